// End-to-end part: the facade, collector, recorder and software P-256 key store against
// the real gateway (environment as in bindings/tests/kotlin/Main.kt).
package tacit.platform.test

import dev.tacit.sdk.KeyClassifier
import dev.tacit.sdk.PlatformKeyStore
import dev.tacit.sdk.SensorClock
import dev.tacit.sdk.SoftwareKeyBackend
import dev.tacit.sdk.SystemSensorClock
import dev.tacit.sdk.Tacit
import dev.tacit.sdk.TacitFailure
import dev.tacit.sdk.RetryReason
import dev.tacit.sdk.UploadPlatform
import dev.tacit.sdk.UploadRunResult
import java.io.File
import java.net.URI
import java.security.SecureRandom
import java.util.Base64
import kotlin.math.PI
import kotlin.math.cos
import kotlin.math.sin
import uniffi.tacit.AuthDecision
import uniffi.tacit.TacitConfig
import uniffi.tacit.defaultUploadSettings

fun env(name: String): String = System.getenv(name) ?: error("$name is not set")

fun config(dataDir: String) = TacitConfig(
    backendUrl = env("TACIT_URL"),
    backendPublicKey = Base64.getDecoder().decode(env("TACIT_PUBLIC_KEY")),
    backendKeyId = env("TACIT_KEY_ID"),
    dataDir = dataDir,
    userId = env("TACIT_USER"),
    upload = defaultUploadSettings(),
)

/** A phone's clocks: the real wall clock and an elapsed-realtime clock one hour after boot. */
object PhoneClock : SensorClock {
    private val boot = System.nanoTime() - 3600 * S
    override fun wallNs() = System.currentTimeMillis() * MS
    override fun monotonicNs() = System.nanoTime() - boot
}

/** Synthetic 50 Hz walking (1.8 steps/s) as sensor events from [startNs] (monotonic base), via the collector. */
fun walk(collector: dev.tacit.sdk.MotionCollector, startNs: Long, seconds: Int = 30) {
    for (i in 0 until seconds * 50) {
        val s = i / 50.0
        val ph = 2 * PI * 1.8 * s
        val noise = 0.05 * sin(i * 12.9898) * cos(i * 78.233)
        val v = 2.5 * sin(ph) + 0.8 * sin(2 * ph + 0.5) + 0.4 * sin(0.5 * ph) + noise
        val t = startNs + i * 20 * MS
        collector.onGyroscope(t - 2 * MS, 0.3 * sin(0.5 * ph), 0.2 * cos(ph), 0.1 * sin(ph))
        collector.onAccelerometer(t, 1.2 * sin(0.5 * ph + 0.3) + 0.3 * sin(ph + 1.0), 0.6 * cos(0.5 * ph) + noise, 9.81 + v)
    }
}

/**
 * Types [text] into [rec] from [startNs] (epoch), classifying and dropping each character
 * at once. Events are delivered in time order, as a touch screen does: a fast typist's
 * next key may go down before the previous one comes up (rollover).
 */
fun type(rec: dev.tacit.sdk.KeystrokeRecorder, text: String, startNs: Long) {
    class Event(val t: Long, val down: Boolean, val k: uniffi.tacit.KeyClass, val pressure: Double)
    val events = ArrayList<Event>()
    var down = startNs
    text.forEachIndexed { i, c ->
        val k = KeyClassifier.classify(c)
        events.add(Event(down, true, k, 0.5 + 0.1 * sin(i.toDouble())))
        events.add(Event(down + ((95 + 20 * cos(i * 1.3)) * 1e6).toLong(), false, k, 0.0))
        down += ((150 + 40 * sin(i * 0.7) + (if (c == ' ') 60 else 0)) * 1e6).toLong()
    }
    for (e in events.sortedBy { it.t }) {
        if (e.down) rec.keyDown(e.k, e.t, e.pressure, 0.1) else rec.keyUp(e.k, e.t)
    }
}

fun nonce(): String = Base64.getUrlEncoder().withoutPadding().encodeToString(ByteArray(18).also { SecureRandom().nextBytes(it) })

/** A claim of the verdict's payload (the signature is verified by bindings/tests/kotlin). */
fun verdictClaim(verdict: String, name: String): String? {
    val payload = verdict.split('.').getOrNull(1) ?: return null
    val json = String(Base64.getUrlDecoder().decode(payload), Charsets.UTF_8)
    return Regex("\"${Regex.escape(name)}\"\\s*:\\s*\"([^\"]*)\"").find(json)?.groupValues?.get(1)
}

/** `GET /metrics`: the value of a series (summed over labels matching [labelPart]), 0 when absent. */
fun metric(name: String, labelPart: String = ""): Long =
    URI(env("TACIT_URL") + "/metrics").toURL().readText().lines()
        .filter { it.startsWith(name) && it.contains(labelPart) && !it.startsWith("#") }
        .sumOf { it.substringAfterLast(' ').toDoubleOrNull()?.toLong() ?: 0L }

/** The gateway's registered devices before this test (the counters are the gateway's, not ours). */
var devicesBefore = 0L

suspend fun endToEnd() {
    devicesBefore = metric("tacit_devices_registered_total")
    val storedBefore = metric("tacit_envelopes_total", "status=\"stored\"")
    val rejectedBefore = metric("tacit_envelopes_total", "status=\"rejected\"")
    val data = File(env("TACIT_DATA_DIR"), "platform").apply { mkdirs() }
    val keys = File(data, "keys")
    val store = PlatformKeyStore(SoftwareKeyBackend(keys))
    val tacit = Tacit.configure(config(File(data, "client").path), store)
    val info = tacit.register(env("TACIT_TOKEN"))
    check("facade registers with the software P-256 key", info.deviceId.length == 32 && info.userId == env("TACIT_USER"), info)

    // 30 s of walking that ended 170 s ago, as SensorEvent timestamps (elapsed realtime).
    val collector = tacit.motionCollector(PhoneClock)
    walk(collector, PhoneClock.monotonicNs() - 200 * S)
    collector.stop()
    val cs = collector.stats()
    check("collector: 1500 readings, all with gyro, 30 batches", cs.readings == 1500L && cs.withGyro == 1500L && cs.batches == 30L && cs.droppedInvalid == 0L, cs)

    val rec = tacit.keystrokeRecorder()
    val start = System.currentTimeMillis() * MS - 165 * S
    type(rec, "the quick brown fox jumps over the lazy dog, 1234 times! ".repeat(2), start)
    rec.flush()
    rec.beginPhrase()
    type(rec, "tacit-phrase", start + 30 * S)
    rec.phraseEntry("tacit-phrase")
    check("recorder: presses, blocks and a phrase entry", rec.stats().let { it.presses == 126L /* 114 free-text keys + 12 phrase keys */ && it.phraseEntries == 1L &&
            it.droppedOutOfOrder == 0L && it.droppedUnmatchedUp == 0L }, rec.stats())

    tacit.refresh()
    var st = tacit.state.value
    check(
        "core accepted every reading and key",
        st.recorded.motionAccepted == 1500L && st.recorded.motionDropped == 0L && st.recorded.keysAccepted == 126L &&
            st.recorded.featureRecords > 0 && st.droppedBatches == 0L && st.recordFailures == 0L,
        st,
    )
    val sealed = tacit.seal()
    st = tacit.state.value
    val waiting = st.status?.outboxEnvelopes ?: 0UL
    check("sealed into the outbox", waiting >= 1UL && st.status?.pendingRecords == 0UL, "$sealed ${st.status}")

    val up = tacit.uploadNow(UploadPlatform.IOS_APP_REFRESH.budgetMs)
    check("budgeted upload stored everything", up.stored == waiting && up.remaining == 0UL && !up.outOfTime && up.rejected == 0UL, up)
    st = tacit.state.value
    check("state after upload: outbox empty, upload time set", st.status?.let { it.outboxEnvelopes == 0UL && it.lastUploadUnixMs != null } == true, st.status)
    check(
        "gateway verified the P-256 signatures (stored, none rejected)",
        metric("tacit_envelopes_total", "status=\"stored\"") - storedBefore == waiting.toLong() &&
            metric("tacit_envelopes_total", "status=\"rejected\"") == rejectedBefore,
        URI(env("TACIT_URL") + "/metrics").toURL().readText().lines().filter { it.startsWith("tacit_envelopes_total") },
    )
    val scheduled = tacit.runScheduledUpload(UploadPlatform.ANDROID_WORKMANAGER.budgetMs)
    check("scheduled run with nothing left is done", scheduled is UploadRunResult.Done, scheduled)

    type(rec, "more words typed", System.currentTimeMillis() * MS - 20 * S)
    rec.flush()
    val n = nonce()
    val auth = tacit.authenticate(n)
    check("authenticate with a nonce answers step_up (nobody enrolled)", auth.decision == AuthDecision.STEP_UP, auth)
    check("verdict bound to the nonce and device", verdictClaim(auth.verdict, "nonce") == n && verdictClaim(auth.verdict, "device") == info.deviceId, auth.verdict.take(40))
    val reused = expectThrows<TacitFailure.RetryLater>("a reused nonce -> RetryLater") { kotlinx.coroutines.runBlocking { tacit.authenticate(n) } }
    check("reused nonce reason is NONCE_USED (ask the server for a new one)", reused?.reason == RetryReason.NONCE_USED, reused)
    expectThrows<TacitFailure.FixInput>("malformed nonce -> FixInput") { kotlinx.coroutines.runBlocking { tacit.authenticate("too short") } }
    tacit.close()

    // Reopen: the same software key, the same registration.
    val again = Tacit.configure(config(File(data, "client").path), PlatformKeyStore(SoftwareKeyBackend(keys)))
    again.refresh()
    check("reopened facade is still registered as the same device", again.state.value.status?.deviceId == info.deviceId, again.state.value.status)
    again.close()

    expectThrows<TacitFailure.KeyStore>("failing key store -> TacitFailure.KeyStore at configure") {
        Tacit.configure(config(File(data, "broken").path), PlatformKeyStore(FailingBackend("secure element busy")))
    }
    expectThrows<TacitFailure.FixInput>("bad configuration -> FixInput") {
        Tacit.configure(config(File(data, "bad").path).copy(backendPublicKey = ByteArray(5)))
    }
}

suspend fun quickstartRun() {
    val n = nonce()
    val verdict = quickstart.quickstart(config(File(env("TACIT_DATA_DIR"), "quickstart").path), env("TACIT_TOKEN2"), n) { collector ->
        walk(collector, SystemSensorClock.monotonicNs() - 200 * S)
    }
    check("quickstart returns a verdict for its nonce", verdict != null && verdictClaim(verdict, "nonce") == n, verdict?.take(40))
    check("gateway counts both new devices", metric("tacit_devices_registered_total") - devicesBefore == 2L)
}
