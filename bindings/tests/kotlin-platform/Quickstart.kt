// Quickstart: the app developer's view of the Tacit SDK (copied into README.md; a check
// keeps them identical). Compiled and run against a real gateway by bindings/run-tests.sh.
package quickstart

import dev.tacit.sdk.MotionCollector
import dev.tacit.sdk.PlatformKeyStore
import dev.tacit.sdk.SoftwareKeyBackend
import dev.tacit.sdk.SystemSensorClock
import dev.tacit.sdk.Tacit
import dev.tacit.sdk.TacitFailure
import java.io.File
import uniffi.tacit.TacitConfig

/** Opens the SDK, registers once, collects motion, and returns a verdict for [nonce] (null: try again later). */
suspend fun quickstart(config: TacitConfig, enrolmentToken: String, nonce: String, sensors: (MotionCollector) -> Unit): String? {
    // On Android: PlatformTrust.initialize(context) once per process (TLS checked by Android),
    // config.dataDir under context.noBackupFilesDir, PlatformKeyStore(AndroidKeystoreBackend(context)).
    val tacit = Tacit.configure(config, PlatformKeyStore(SoftwareKeyBackend(File(config.dataDir, "keys"))))
    try {
        tacit.refresh()
        if (tacit.state.value.status?.registered != true) tacit.register(enrolmentToken)
        // On Android: AndroidMotionSensors.forTacit(context, tacit).start() feeds the collector.
        val collector = tacit.motionCollector(SystemSensorClock)
        sensors(collector)
        collector.stop()
        return tacit.authenticate(nonce).verdict // send it to your server, which verifies it
    } catch (f: TacitFailure) {
        return when (f) {
            is TacitFailure.RetryLater -> null // offline, rate limited: retry after f.retryAfterMs or your backoff
            is TacitFailure.Reregister -> null // revoked or unknown: get a new enrolment token
            is TacitFailure.FixInput, is TacitFailure.KeyStore, is TacitFailure.Internal -> throw f
        }
    } finally {
        tacit.close()
    }
}
