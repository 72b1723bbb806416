// Test runner of the Swift platform layer (bindings/apple/Sources/Tacit), compiled on
// Linux into one module with the generated tacit.swift (bindings/run-tests.sh, step
// swift-platform): unit tests of the pure parts, then the end-to-end part and the
// quickstart against the real gateway (skipped, and counted as a failure, when TACIT_URL
// is not set, unless `--unit-only` is given). Details go to stderr; stdout gets exactly
// one line, "N passed, N failed".
import Foundation
#if canImport(Glibc)
import Glibc
#endif

await unitTests()
if ProcessInfo.processInfo.environment["TACIT_URL"] != nil {
    do {
        try await endToEnd()
    } catch {
        check("end-to-end part ran to the end", false, error)
    }
} else if !CommandLine.arguments.contains("--unit-only") {
    check("TACIT_URL set for the end-to-end part", false, "run through bindings/run-tests.sh, or pass --unit-only")
}
print("\(passed) passed, \(failed) failed")
fflush(stdout)
exit(failed == 0 ? 0 : 1)
