// Quickstart of the Swift SDK (the app developer's view), compiled and run against the
// real gateway by bindings/run-tests.sh (step swift-platform); README.md shows the same
// lines. `samples` stand in for CoreMotion, which Linux lacks.
import Foundation
#if canImport(Tacit)
import Tacit
#endif

func quickstart(url: String, publicKey: Data, keyId: String, userId: String, enrolmentToken: String,
                dataDirectory: URL, nonce: String, samples: [DeviceMotionSample]) async -> String {
    do {
        let tacit = try Tacit(configuration: .init(backendURL: url, backendPublicKey: publicKey, backendKeyId: keyId,
                                                   dataDirectory: dataDirectory, userId: userId))
        if await !tacit.refreshStatus().registered {
            _ = try await tacit.register(enrolmentToken: enrolmentToken)
        }
        let motion = tacit.motionCollector()     // on iOS: try CoreMotionCollector(tacit: tacit).start()
        for sample in samples { motion.add(sample) }
        motion.stop()
        let result = try await tacit.authenticate(nonce: nonce)   // send result.verdict to your server
        await tacit.close()
        return "decision: \(result.decision)"
    } catch let failure as TacitFailure {
        switch failure.action {
        case .retryLater(let afterMs): return "retry later (\(afterMs.map { "\($0) ms" } ?? "when online"))"
        case .reRegister(let why): return "ask for a new enrolment token (\(why))"
        case .fixInput, .keyStore, .internal: return "report: \(failure)"
        }
    } catch {
        return "unexpected: \(error)"
    }
}
