// Tests of the Kotlin platform layer (bindings/android/tacit/src/main/kotlin, pure part):
// unit tests on the JVM, then the end-to-end part and the quickstart against the real
// gateway (skipped when TACIT_URL is unset). Run by bindings/run-tests.sh (kotlin step).
// Details go to stderr; stdout gets exactly one line, "N passed, N failed".
package tacit.platform.test

import kotlin.system.exitProcess
import kotlinx.coroutines.runBlocking

fun main() {
    unitTests()
    if (System.getenv("TACIT_URL") == null) {
        System.err.println("TACIT_URL unset: end-to-end part skipped")
    } else {
        section("end to end (facade, collector, software P-256 key, real gateway)") { runBlocking { endToEnd() } }
        section("quickstart") { runBlocking { quickstartRun() } }
    }
    println("$passed passed, $failed failed")
    System.out.flush()
    exitProcess(if (failed == 0) 0 else 1)
}
