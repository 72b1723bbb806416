// Unit tests of the pure platform layer (dev.tacit.sdk): no native library needed.
package tacit.platform.test

import dev.tacit.sdk.GeneratedKey
import dev.tacit.sdk.KeyBackend
import dev.tacit.sdk.KeyClassifier
import dev.tacit.sdk.KeystrokeRecorder
import dev.tacit.sdk.MotionCollector
import dev.tacit.sdk.MotionConversion
import dev.tacit.sdk.PlatformKeyStore
import dev.tacit.sdk.RequiredNetwork
import dev.tacit.sdk.RetryReason
import dev.tacit.sdk.SensorClock
import dev.tacit.sdk.SoftwareKeyBackend
import dev.tacit.sdk.Tacit
import dev.tacit.sdk.TacitFailure
import dev.tacit.sdk.TacitOptions
import dev.tacit.sdk.UploadInput
import dev.tacit.sdk.UploadPlatform
import dev.tacit.sdk.UploadPolicy
import dev.tacit.sdk.UploadRunResult
import dev.tacit.sdk.UploadRunner
import dev.tacit.sdk.UploadScheduler
import dev.tacit.sdk.generateWithStrongBoxFallback
import java.io.File
import java.io.IOException
import java.math.BigInteger
import java.nio.file.Files
import java.nio.file.attribute.PosixFilePermissions
import java.security.AlgorithmParameters
import java.security.KeyFactory
import java.security.Signature
import java.security.spec.ECGenParameterSpec
import java.security.spec.ECParameterSpec
import java.security.spec.ECPoint
import java.security.spec.ECPublicKeySpec
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.coroutines.cancellation.CancellationException
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import uniffi.tacit.AuthResult
import uniffi.tacit.CameraFrame
import uniffi.tacit.ClientStatus
import uniffi.tacit.DeviceInfo
import uniffi.tacit.KeyAlgorithm
import uniffi.tacit.KeyClass
import uniffi.tacit.KeyPress
import uniffi.tacit.KeyStoreException
import uniffi.tacit.MotionReading
import uniffi.tacit.NetworkState
import uniffi.tacit.RecordReport
import uniffi.tacit.SealReport
import uniffi.tacit.TacitClientInterface
import uniffi.tacit.TacitException
import uniffi.tacit.UploadSummary
import uniffi.tacit.Vector3

const val MS = 1_000_000L
const val S = 1_000_000_000L

/** A clock the test moves by hand. */
class FakeClock(var wall: Long, var mono: Long) : SensorClock {
    override fun wallNs() = wall
    override fun monotonicNs() = mono
    fun advance(ns: Long, wallExtra: Long = 0) {
        mono += ns
        wall += ns + wallExtra
    }
}

fun conversionTests() = section("clock and unit conversion") {
    val clock = FakeClock(wall = 1_700_000_000L * S, mono = 1_000L * S)
    val conv = MotionConversion(clock)
    val offset = clock.wall - clock.mono
    check("elapsed-realtime event -> epoch", conv.toEpochNs(clock.mono - 500 * MS) == clock.wall - 500 * MS, conv.toEpochNs(clock.mono))
    // 1 s later with 3 ms of wall-clock jitter: the offset is kept (no jitter in the stream).
    clock.advance(1 * S, wallExtra = 3 * MS)
    check("offset kept within the re-anchor interval", conv.toEpochNs(clock.mono) == clock.mono + offset && conv.anchors == 1L, conv.anchors)
    clock.advance(6 * S)
    val e = conv.toEpochNs(clock.mono)
    check("re-anchored after the interval (drift absorbed)", conv.anchors == 2L && e == clock.wall, "$e vs ${clock.wall}")
    // The user sets the clock one hour ahead: the next reading carries the new time.
    clock.advance(100 * MS, wallExtra = 3600 * S)
    val jumped = conv.toEpochNs(clock.mono - 20 * MS)
    check("wall-clock jump re-anchors at once", conv.anchors == 3L && jumped == clock.wall - 20 * MS, "$jumped vs ${clock.wall}")
    clock.advance(200 * MS, wallExtra = -7200 * S)
    check("backward jump re-anchors too", conv.toEpochNs(clock.mono) == clock.wall && conv.anchors == 4L)
    check("negative event time dropped", conv.toEpochNs(-1) == null && conv.dropped == 1L)
    check("overflowing event time dropped", conv.toEpochNs(Long.MAX_VALUE - 10) == null && conv.dropped == 2L)
    val early = MotionConversion(FakeClock(wall = 500 * MS, mono = 10 * S))
    check("time before 1970 dropped", early.toEpochNs(1 * S) == null && early.dropped == 1L)
}

fun collectorTests() = section("motion collector") {
    val clock = FakeClock(wall = 1_700_000_000L * S, mono = 5_000L * S)
    val offset = clock.wall - clock.mono
    val batches = CopyOnWriteArrayList<List<MotionReading>>()
    val c = MotionCollector(MotionConversion(clock)) { batches.add(it) }
    val start = clock.mono - 10 * S
    for (i in 0 until 120) {
        val t = start + i * 20 * MS
        c.onGyroscope(t - 3 * MS, 0.1, 0.2, 0.3 + i)
        c.onAccelerometer(t, 0.0, 0.1, 9.81)
    }
    check("50 readings per batch while running", batches.size == 2 && batches.all { it.size == 50 }, batches.map { it.size })
    c.stop()
    check("stop() flushes the partial batch", batches.size == 3 && batches[2].size == 20, batches.map { it.size })
    val all = batches.flatten()
    check("timestamps converted to epoch", all.first().timestampNs == start + offset && all.last().timestampNs == start + 119 * 20 * MS + offset)
    check("each reading paired with the gyro 3 ms before", all.withIndex().all { (i, r) -> r.gyro?.z == 0.3 + i }, all.take(2))
    check("accel kept as given (m/s², Android convention)", all.all { it.accel == Vector3(0.0, 0.1, 9.81) })
    c.onAccelerometer(start + 10 * S, 0.0, 0.0, 9.8)
    check("events after stop() ignored", c.stats().readings == 120L)

    val out = ArrayList<MotionReading>()
    val d = MotionCollector(MotionConversion(clock), batchSize = 1000) { out.addAll(it) }
    val t0 = clock.mono - 5 * S
    d.onGyroscope(t0, 1.0, 1.0, 1.0)
    d.onAccelerometer(t0 + 20 * MS, 0.0, 0.0, 9.8) // exactly 20 ms: paired
    d.onAccelerometer(t0 + 41 * MS, 0.0, 0.0, 9.8) // 41 ms: too old
    d.onGyroscope(t0 + 50 * MS, Double.NaN, 0.0, 0.0) // dropped, does not replace
    d.onAccelerometer(t0 + 60 * MS, 0.0, 0.0, 9.8) // newest valid gyro is 60 ms old
    d.onAccelerometer(t0 + 80 * MS, Double.NaN, 0.0, 9.8)
    d.onAccelerometer(t0 + 90 * MS, 0.0, Double.POSITIVE_INFINITY, 9.8)
    d.onAccelerometer(-5, 0.0, 0.0, 9.8)
    d.onAccelerometer(t0 + 60 * MS, 0.0, 0.0, 9.8) // same time again: out of order
    d.onGyroscope(t0 + 95 * MS, 0.5, 0.5, 0.5)
    d.onAccelerometer(t0 + 100 * MS, 0.0, 0.0, 9.8) // gyro 5 ms before: paired
    d.flush()
    val st = d.stats()
    check("gyro within 20 ms paired, older not", out.map { it.gyro != null } == listOf(true, false, false, true), out.map { it.gyro })
    check("NaN/inf/negative-time readings dropped and counted", st.droppedInvalid == 3L && st.readings == 4L, st)
    check("non-increasing time dropped and counted", st.droppedOutOfOrder == 1L, st)
    check("NaN gyro dropped and counted", st.droppedGyro == 1L, st)
    check("no NaN reaches the sink", out.all { it.accel.x.isFinite() && it.accel.y.isFinite() && it.accel.z.isFinite() })
    check("collector's description holds no samples", !d.toString().contains("9.8"), d.toString())
    check("50 Hz requested", MotionCollector.SAMPLING_PERIOD_US == 20_000)
}

fun keystrokeTests() = section("keystroke recorder") {
    val classes = mapOf(
        'a' to KeyClass.LETTER, 'Z' to KeyClass.LETTER, 'é' to KeyClass.LETTER, '7' to KeyClass.DIGIT,
        ' ' to KeyClass.SPACE, '\b' to KeyClass.BACKSPACE, '\n' to KeyClass.ENTER, '!' to KeyClass.PUNCTUATION,
        '€' to KeyClass.PUNCTUATION, '\u0000' to KeyClass.OTHER, '\u0007' to KeyClass.OTHER,
    )
    check("classifier", classes.all { (c, k) -> KeyClassifier.classify(c) == k }, classes.mapValues { KeyClassifier.classify(it.key) })

    val blocks = ArrayList<List<KeyPress>>()
    val phrases = ArrayList<Pair<String, List<KeyPress>>>()
    val rec = KeystrokeRecorder(blockSize = 5, keySink = { blocks.add(it) }, phraseSink = { p, k -> phrases.add(p to k) })
    val secret = "hunter2 quiz"
    var t = 1_700_000_000L * S
    for (ch in secret) {
        val k = KeyClassifier.classify(ch) // the character goes no further
        rec.keyDown(k, t, 0.4, 0.1)
        rec.keyUp(k, t + 90 * MS)
        t += 150 * MS
    }
    check("blocks handed on every 5 presses", blocks.map { it.size } == listOf(5, 5), blocks.map { it.size })
    rec.flush()
    val presses = blocks.flatten()
    check("flush hands the rest", presses.size == secret.length && blocks.size == 3)
    check("classes in order", presses.map { it.keyClass } == secret.map { KeyClassifier.classify(it) })
    check("timings and touch kept", presses.all { it.upNs - it.downNs == 90 * MS && it.pressure == 0.4 && it.area == 0.1 })
    val text = rec.toString() + presses.toString()
    check("no typed text in descriptions", !text.contains("hunter") && !text.contains("quiz"), text.take(200))
    val fieldTypes = (listOf(KeystrokeRecorder::class.java) + KeystrokeRecorder::class.java.declaredClasses)
        .flatMap { cls -> cls.declaredFields.map { it.type } }
    check(
        "recorder has no field that can hold characters",
        fieldTypes.none { it == String::class.java || it == Char::class.javaPrimitiveType || it == CharArray::class.java || CharSequence::class.java.isAssignableFrom(it) },
        fieldTypes,
    )

    // Rollover: a second key goes down before the first comes up.
    blocks.clear()
    rec.keyDown(KeyClass.LETTER, t)
    rec.keyDown(KeyClass.LETTER, t + 50 * MS)
    rec.keyUp(KeyClass.LETTER, t + 100 * MS)
    rec.keyUp(KeyClass.LETTER, t + 150 * MS)
    rec.flush()
    check("rollover pairs oldest first", blocks.single().map { it.downNs - t to it.upNs - t } == listOf(0L to 100 * MS, 50 * MS to 150 * MS), blocks)

    t += 1 * S
    val before = rec.stats()
    rec.keyUp(KeyClass.DIGIT, t)
    check("unmatched up dropped", rec.stats().droppedUnmatchedUp == before.droppedUnmatchedUp + 1)
    rec.keyDown(KeyClass.SPACE, t + 10 * MS)
    rec.keyDown(KeyClass.LETTER, t + 2_500 * MS)
    rec.keyUp(KeyClass.SPACE, t + 2_510 * MS)
    check("down without up for > 2 s dropped", rec.stats().droppedStaleDown == 1L && rec.stats().droppedUnmatchedUp == before.droppedUnmatchedUp + 2, rec.stats())
    rec.keyUp(KeyClass.LETTER, t + 2_400 * MS)
    check("out-of-order event dropped", rec.stats().droppedOutOfOrder == 1L, rec.stats())
    rec.keyCancel(KeyClass.LETTER)
    check("cancelled touch forgotten", rec.stats().cancelled == 1L)

    // A phrase the app never submits stays bounded: presses past the bound are counted.
    val capped = KeystrokeRecorder(blockSize = 5, keySink = {}, phraseSink = { _, _ -> })
    capped.beginPhrase()
    var tc = 1_700_000_500L * S
    repeat(KeystrokeRecorder.MAX_PHRASE_KEYS + 3) {
        capped.keyDown(KeyClass.DIGIT, tc)
        capped.keyUp(KeyClass.DIGIT, tc + 10 * MS)
        tc += 20 * MS
    }
    check("phrase presses past the bound are dropped and counted", capped.stats().droppedOverflow == 3L, capped.stats())

    // A phrase: free text before it is handed on separately.
    blocks.clear()
    t += 10 * S
    for (ch in "ab") {
        rec.keyDown(KeyClassifier.classify(ch), t); rec.keyUp(KeyClassifier.classify(ch), t + 80 * MS); t += 200 * MS
    }
    rec.beginPhrase()
    check("beginPhrase hands the free text first", blocks.singleOrNull()?.size == 2, blocks)
    val pin = "7391xq"
    for (ch in pin) {
        val k = KeyClassifier.classify(ch)
        rec.keyDown(k, t, 0.5, 0.2); rec.keyUp(k, t + 80 * MS); t += 200 * MS
    }
    check("phrase keys are not free text", blocks.size == 1)
    rec.phraseEntry(pin)
    check("phrase entry handed with its presses", phrases.singleOrNull()?.let { it.first == pin && it.second.size == pin.length } == true, phrases.map { it.second.size })
    check("phrase not in the recorder's description", !rec.toString().contains(pin) && !rec.toString().contains("7391"), rec.toString())
    rec.phraseEntry("nothing typed")
    check("empty phrase entry not handed on", phrases.size == 1 && rec.stats().phraseEntries == 1L)
    check("negative time dropped", run { rec.keyDown(KeyClass.LETTER, -1); rec.stats().droppedOutOfOrder == 2L })
}

fun summary(sent: Long = 0, stored: Long = 0, failed: Long = 0, remaining: Long = 0, skipped: String? = null, outOfTime: Boolean = false, error: String? = null, retryAfterMs: Long? = null) =
    UploadSummary(sent.toULong(), stored.toULong(), 0UL, 0UL, failed.toULong(), remaining.toULong(), skipped, outOfTime, error, retryAfterMs?.toULong())

fun schedulerTests() = section("upload scheduler and runner") {
    val budgets = UploadPlatform.entries.associateWith { it.budgetMs }
    check(
        "platform budgets",
        budgets == mapOf(
            UploadPlatform.ANDROID_WORKMANAGER to 540_000L, UploadPlatform.IOS_APP_REFRESH to 25_000L,
            UploadPlatform.IOS_PROCESSING to 300_000L, UploadPlatform.FOREGROUND to 60_000L,
        ),
        budgets,
    )
    val now = 1_700_000_000_000L
    val base = UploadInput(10, 50_000, null, now, online = true, unmetered = false, wifiOnly = false, batteryLow = false, platform = UploadPlatform.ANDROID_WORKMANAGER)
    for (p in UploadPlatform.entries) {
        val d = UploadScheduler.decide(base.copy(platform = p))
        check("$p: runs now with its budget", d.runNow && d.budgetMs == p.budgetMs && d.requiredNetwork == RequiredNetwork.ANY, d)
    }
    val policy = UploadPolicy()
    UploadScheduler.decide(base.copy(outboxEnvelopes = 0, outboxBytes = 0)).let {
        check("empty outbox: look again later", !it.runNow && it.delayMs == policy.idleCheckMs, it)
    }
    UploadScheduler.decide(base.copy(online = false)).let {
        check("offline: wait for a network", !it.runNow && it.delayMs == 0L && it.requiredNetwork == RequiredNetwork.ANY, it)
    }
    UploadScheduler.decide(base.copy(wifiOnly = true)).let {
        check("wifiOnly on metered: wait for unmetered", !it.runNow && it.requiredNetwork == RequiredNetwork.UNMETERED, it)
    }
    UploadScheduler.decide(base.copy(wifiOnly = true, unmetered = true)).let {
        check("wifiOnly on unmetered: run, needing unmetered", it.runNow && it.requiredNetwork == RequiredNetwork.UNMETERED, it)
    }
    UploadScheduler.decide(base.copy(batteryLow = true)).let {
        check("battery low: wait for it to recover", !it.runNow && it.requiresBatteryNotLow, it)
    }
    UploadScheduler.decide(base.copy(batteryLow = true, outboxBytes = policy.urgentBytes)).let {
        check("battery low but outbox large: run", it.runNow && !it.requiresBatteryNotLow, it)
    }
    UploadScheduler.decide(base.copy(batteryLow = true, platform = UploadPlatform.FOREGROUND)).let {
        check("battery low in the foreground: run", it.runNow, it)
    }
    UploadScheduler.decide(base.copy(lastUploadUnixMs = now - 5 * 60_000)).let {
        check("uploaded 5 min ago: wait out the interval", !it.runNow && it.delayMs == 10 * 60_000L, it)
    }
    UploadScheduler.decide(base.copy(lastUploadUnixMs = now - 5 * 60_000, outboxEnvelopes = 100)).let {
        check("recent upload but many envelopes: run", it.runNow, it)
    }
    UploadScheduler.decide(base.copy(lastUploadUnixMs = now - 5 * 60_000, platform = UploadPlatform.FOREGROUND)).let {
        check("recent upload in the foreground: run", it.runNow, it)
    }
    UploadScheduler.decide(base.copy(lastUploadUnixMs = now - 20 * 60_000)).let { check("interval passed: run", it.runNow, it) }
    check(
        "backoff doubles and is capped",
        UploadScheduler.backoffMs(0) == 30_000L && UploadScheduler.backoffMs(1) == 60_000L && UploadScheduler.backoffMs(10) == 3_600_000L &&
            UploadScheduler.backoffMs(1000) == 3_600_000L,
    )

    val r = UploadRunner { error("unused") }
    check("all sent -> done", r.mapSummary(summary(sent = 3, stored = 3)) is UploadRunResult.Done)
    (r.mapSummary(summary(sent = 3, stored = 3, remaining = 5, outOfTime = true)) as? UploadRunResult.MoreWork).let {
        check("out of time -> more work soon", it?.delayMs == policy.followUpDelayMs, it)
    }
    check("remaining -> more work", r.mapSummary(summary(sent = 2, stored = 2, remaining = 1)) is UploadRunResult.MoreWork)
    (r.mapSummary(summary(sent = 4, failed = 4, remaining = 4, error = "network error: refused"), attempt = 1) as? UploadRunResult.RetryLater).let {
        check("undelivered -> retry with backoff, and why", it?.delayMs == 60_000L && it.failure?.message?.contains("refused") == true, it)
    }
    (r.mapSummary(summary(sent = 4, failed = 4, remaining = 4, error = "throttled", retryAfterMs = 600_000)) as? UploadRunResult.RetryLater).let {
        check("throttled -> retry after the backend's Retry-After", it?.delayMs == 600_000L && it.failure?.let { f -> f is TacitFailure.RetryLater && f.reason == RetryReason.RATE_LIMITED } == true, it)
    }
    (r.mapSummary(summary(sent = 32, stored = 16, failed = 16, remaining = 24, outOfTime = true)) as? UploadRunResult.MoreWork).let {
        check("a batch cut by the budget -> more work, not a failure", it?.delayMs == policy.followUpDelayMs, it)
    }
    (r.mapSummary(summary(remaining = 4, skipped = "offline")) as? UploadRunResult.RetryLater).let {
        check("skipped (offline) -> retry when the network is back", it?.delayMs == 0L && it.skippedReason == "offline", it)
    }
    runBlocking {
        var budgetSeen = -1L
        val ok = UploadRunner { b -> budgetSeen = b; summary(sent = 1, stored = 1) }.runOnce(25_000)
        check("runOnce passes the budget to uploadPendingWithin", budgetSeen == 25_000L && ok is UploadRunResult.Done, budgetSeen)
        suspend fun failing(e: Exception, attempt: Int = 0) = UploadRunner { throw e }.runOnce(1000, attempt)
        (failing(TacitException.Network("down", null), attempt = 2) as? UploadRunResult.RetryLater).let {
            check("network error -> retry later with backoff", it?.delayMs == 120_000L && it.failure is TacitFailure.RetryLater, it)
        }
        check("rate limited -> retry later", (failing(TacitException.RateLimited("slow down", null)) as? UploadRunResult.RetryLater)?.failure is TacitFailure.RetryLater)
        check("key store locked -> retry later", (failing(TacitException.KeyStore("locked")) as? UploadRunResult.RetryLater)?.failure is TacitFailure.KeyStore)
        check("internal -> retry later", failing(TacitException.Internal("bug")) is UploadRunResult.RetryLater)
        for (e in listOf(TacitException.DeviceRevoked("r"), TacitException.DeviceCloned("c"), TacitException.UnknownDevice("u"), TacitException.NotRegistered("n"))) {
            check("${e::class.simpleName} -> stop (re-register)", (failing(e) as? UploadRunResult.Stop)?.failure is TacitFailure.Reregister)
        }
        check("invalid input -> stop", (failing(TacitException.InvalidInput("zero budget")) as? UploadRunResult.Stop)?.failure is TacitFailure.FixInput)
        expectThrows<CancellationException>("cancellation is not a failure") { runBlocking { failing(CancellationException("stopped")) } }
    }
}

/** A key backend that always fails, like a locked or broken secure element. */
class FailingBackend(private val message: String) : KeyBackend {
    override fun generate(alias: String): ByteArray = throw IOException(message)
    override fun load(alias: String): ByteArray? = throw IOException(message)
    override fun sign(alias: String, data: ByteArray): ByteArray = throw IOException(message)
    override fun delete(alias: String) = Unit
}

/** The public key of a 65-byte point, for JCA verification. */
fun p256PublicKey(point: ByteArray): java.security.PublicKey {
    val params = AlgorithmParameters.getInstance("EC").apply { init(ECGenParameterSpec("secp256r1")) }
        .getParameterSpec(ECParameterSpec::class.java)
    val w = ECPoint(BigInteger(1, point.copyOfRange(1, 33)), BigInteger(1, point.copyOfRange(33, 65)))
    return KeyFactory.getInstance("EC").generatePublic(ECPublicKeySpec(w, params))
}

fun verifies(point: ByteArray, msg: ByteArray, sig: ByteArray): Boolean = Signature.getInstance("SHA256withECDSA").run {
    initVerify(p256PublicKey(point))
    update(msg)
    verify(sig)
}

fun keyStoreTests() = section("key store contract") {
    val dir = Files.createTempDirectory("tacit-keys").toFile()
    try {
        val store = PlatformKeyStore(SoftwareKeyBackend(dir))
        check("algorithm is ECDSA P-256", store.algorithm() == KeyAlgorithm.ECDSA_P256_SHA256)
        val pub = store.publicKey()
        check("public key: 65 bytes, 0x04", pub.size == 65 && pub[0] == 0x04.toByte(), pub.size)
        val msg = "envelope header".toByteArray()
        val sig = store.sign(msg)
        check("signature is DER (SEQUENCE)", sig[0] == 0x30.toByte() && sig.size in 8..72, sig.size)
        check("signature verifies with JCA", verifies(pub, msg, sig))
        check("signature does not verify another message", !verifies(pub, "other".toByteArray(), sig))
        val p8 = File(dir, "${PlatformKeyStore.DEFAULT_ALIAS}.p8")
        check("private key persisted with mode 0600", PosixFilePermissions.toString(Files.getPosixFilePermissions(p8.toPath())) == "rw-------")
        val reopened = PlatformKeyStore(SoftwareKeyBackend(dir))
        check("same alias reopens the same key from disk", reopened.publicKey().contentEquals(pub))
        check("reopened key signs for the same public key", verifies(pub, msg, reopened.sign(msg)))
        val other = PlatformKeyStore(SoftwareKeyBackend(dir), alias = "second")
        check("another alias is another key", !other.publicKey().contentEquals(pub))
        check("generate refuses to overwrite", runCatching { SoftwareKeyBackend(dir).generate("second") }.isFailure)
        SoftwareKeyBackend(dir).delete("second")
        check("delete removes the key", SoftwareKeyBackend(dir).load("second") == null)
    } finally {
        dir.deleteRecursively()
    }
    val broken = PlatformKeyStore(FailingBackend("secure element busy"))
    expectThrows<KeyStoreException.Unavailable>("failing backend: publicKey -> Unavailable") { broken.publicKey() }?.let {
        check("Unavailable carries the cause", it.detail.contains("secure element busy") && it.cause is IOException, it.detail)
    }
    expectThrows<KeyStoreException.Unavailable>("failing backend: sign -> Unavailable") { broken.sign(byteArrayOf(1)) }
    val short = PlatformKeyStore(object : KeyBackend {
        override fun generate(alias: String) = ByteArray(33) { 2 }
        override fun load(alias: String): ByteArray? = null
        override fun sign(alias: String, data: ByteArray) = ByteArray(0)
        override fun delete(alias: String) = Unit
    })
    expectThrows<KeyStoreException.Unavailable>("malformed public key -> Unavailable") { short.publicKey() }
    expectThrows<KeyStoreException.Unavailable>("path-like alias refused") {
        PlatformKeyStore(SoftwareKeyBackend(File("/tmp")), alias = "../escape").publicKey()
    }

    class StrongBoxUnavailable : Exception("no strongbox for this key")
    val calls = ArrayList<Boolean>()
    val fellBack = generateWithStrongBoxFallback(true, { it is StrongBoxUnavailable }) { sb ->
        calls.add(sb); if (sb) throw StrongBoxUnavailable() else "tee-key"
    }
    check("StrongBox refused -> TEE", fellBack == GeneratedKey("tee-key", strongBox = false) && calls == listOf(true, false), calls)
    calls.clear()
    val inBox = generateWithStrongBoxFallback(true, { it is StrongBoxUnavailable }) { sb -> calls.add(sb); "sb-key" }
    check("StrongBox when available", inBox.strongBox && calls == listOf(true))
    calls.clear()
    val noBox = generateWithStrongBoxFallback(false, { it is StrongBoxUnavailable }) { sb -> calls.add(sb); "tee-key" }
    check("no StrongBox feature -> TEE only", !noBox.strongBox && calls == listOf(false))
    expectThrows<IllegalStateException>("other failures propagate") {
        generateWithStrongBoxFallback(true, { it is StrongBoxUnavailable }) { throw IllegalStateException("keystore broken") }
    }
}

fun errorMappingTests() = section("error mapping") {
    val cases: List<Pair<TacitException, (TacitFailure) -> Boolean>> = listOf(
        TacitException.InvalidConfig("bad key") to { f -> f is TacitFailure.FixInput },
        TacitException.InvalidInput("negative time") to { f -> f is TacitFailure.FixInput },
        TacitException.Storage("disk full") to { f -> f is TacitFailure.RetryLater && f.reason == RetryReason.STORAGE },
        TacitException.Network("timeout", null) to { f -> f is TacitFailure.RetryLater && f.reason == RetryReason.NETWORK && f.retryAfterMs == null },
        TacitException.InvalidEnrolmentToken("used") to { f -> f is TacitFailure.Reregister && f.tokenRefused && !f.cloned },
        TacitException.DeviceRevoked("admin") to { f -> f is TacitFailure.Reregister && !f.cloned && !f.tokenRefused },
        TacitException.DeviceCloned("seen twice") to { f -> f is TacitFailure.Reregister && f.cloned },
        TacitException.UnknownDevice("deleted") to { f -> f is TacitFailure.Reregister },
        TacitException.StaleRequest("clock") to { f -> f is TacitFailure.RetryLater && f.reason == RetryReason.STALE_REQUEST },
        TacitException.RateLimited("429", 5_000uL) to { f -> f is TacitFailure.RetryLater && f.reason == RetryReason.RATE_LIMITED && f.retryAfterMs == 5_000L },
        TacitException.NonceUsed("nonce_used") to { f -> f is TacitFailure.RetryLater && f.reason == RetryReason.NONCE_USED && f.retryAfterMs == 0L },
        TacitException.KeyListRefused("bad signature") to { f -> f is TacitFailure.Internal },
        TacitException.Server("payload_too_large", "too big") to { f -> f is TacitFailure.Internal && f.code == "payload_too_large" },
        TacitException.NotRegistered("register first") to { f -> f is TacitFailure.Reregister },
        TacitException.KeyStore("locked") to { f -> f is TacitFailure.KeyStore },
        TacitException.Internal("bug") to { f -> f is TacitFailure.Internal && f.code == null },
    )
    for ((e, ok) in cases) {
        val f = TacitFailure.from(e)
        check("${e::class.simpleName} -> ${f::class.simpleName}", ok(f) && f.cause === e && f.detail.contains(e.detail()), f)
    }
    val allCases = TacitException::class.java.declaredClasses.filter { TacitException::class.java.isAssignableFrom(it) && it != TacitException::class.java }.toSet()
    check("every TacitException case is mapped by the test", allCases == cases.map { it.first::class.java }.toSet(), allCases.map { it.simpleName })
    check("Server without a code -> code null", (TacitFailure.from(TacitException.Server("", "garbled")) as TacitFailure.Internal).code == null)
    check("KeyStoreException -> KeyStore", TacitFailure.from(KeyStoreException.Unavailable("locked")) is TacitFailure.KeyStore)
    check("other exceptions -> Internal", TacitFailure.from(IllegalStateException("x")).let { it is TacitFailure.Internal && it.detail.contains("IllegalStateException") })
    val f = TacitFailure.FixInput("x")
    check("a TacitFailure maps to itself", TacitFailure.from(f) === f)
    expectThrows<CancellationException>("cancellation is rethrown, not mapped") { TacitFailure.from(CancellationException("cancelled")) }
}

/** The detail of any case (Server has a code too). */
fun TacitException.detail(): String = when (this) {
    is TacitException.Server -> detail
    else -> javaClass.getMethod("getDetail").invoke(this) as String
}

/** A core client fake: slow record calls, scripted answers, and which thread called. */
class FakeClient(private val recordDelayMs: Long = 0) : TacitClientInterface {
    val motion = CopyOnWriteArrayList<Long>() // first timestamp of each batch, in arrival order
    val threads = CopyOnWriteArrayList<String>()
    var network: NetworkState? = null
    var sealed = 0
    var keysError: Exception? = null
    var authError: Exception? = null
    var upload: UploadSummary = summary()
    var uploadBudget = 0UL

    private fun seen() {
        threads.add(Thread.currentThread().name)
    }

    override suspend fun authenticate(includeFresh: Boolean, nonce: String?): AuthResult {
        seen(); throw authError ?: IllegalStateException("not scripted")
    }
    override fun deviceId(): String = "00".repeat(16)
    override fun recordFace(frame: CameraFrame): RecordReport = RecordReport(0UL, 0UL, 0UL, 0UL)
    override fun recordKeys(events: List<KeyPress>): RecordReport {
        seen(); keysError?.let { throw it }
        return RecordReport(events.size.toULong(), 0UL, 0UL, 0UL)
    }
    override fun recordMotion(samples: List<MotionReading>): RecordReport {
        seen()
        if (recordDelayMs > 0) Thread.sleep(recordDelayMs)
        motion.add(samples.first().timestampNs)
        return RecordReport(samples.size.toULong(), 0UL, 0UL, 1UL)
    }
    override fun recordPhraseEntry(phrase: String, events: List<KeyPress>): RecordReport {
        seen(); return RecordReport(events.size.toULong(), 0UL, 1UL, 1UL)
    }
    override suspend fun refreshBackendKeys(): ULong = 0UL
    override suspend fun registerDevice(enrolmentToken: String): DeviceInfo {
        seen(); return DeviceInfo("ab".repeat(16), "user")
    }
    override fun seal(): SealReport {
        seen(); sealed++; return SealReport(1U, 2U, 0UL)
    }
    override fun setNetworkState(state: NetworkState) {
        seen(); network = state
    }
    override fun status(): ClientStatus {
        seen()
        return ClientStatus(true, "ab".repeat(16), motion.size.toULong(), 100UL, 0UL, 0UL, 0UL, 0UL, null, null, network ?: NetworkState(true, true), "00", 0UL)
    }
    override suspend fun uploadPending(): UploadSummary = upload
    override suspend fun uploadPendingWithin(budgetMs: ULong): UploadSummary {
        seen(); uploadBudget = budgetMs; return upload
    }
}

fun reading(id: Long) = listOf(MotionReading(id, Vector3(0.0, 0.0, 9.8), null))

fun facadeTests() = section("facade") {
    runBlocking {
        val slow = FakeClient(recordDelayMs = 20)
        val tacit = Tacit(slow, TacitOptions(queueCapacity = 8))
        val n = 200
        var longest = 0L
        val t0 = System.nanoTime()
        for (i in 1..n) {
            val s = System.nanoTime()
            tacit.recordMotion(reading(i.toLong()))
            longest = maxOf(longest, System.nanoTime() - s)
        }
        val total = (System.nanoTime() - t0) / 1_000_000
        // The consumer needs 20 ms a batch (4 s for all); the calls must not wait for it.
        check("record calls return immediately while the consumer is slow", total < 1000, "$total ms for $n calls, longest ${longest / 1_000_000} ms")
        val dropped = tacit.state.value.droppedBatches
        check("bounded queue drops when full, counted in the state", dropped >= n - 8 - total / 20 - 2 && dropped > 0, "dropped $dropped in $total ms")
        tacit.refresh()
        val processed = slow.motion.toList()
        val st = tacit.state.value
        check("processed + dropped = recorded", processed.size + st.droppedBatches == n.toLong(), "${processed.size} + ${st.droppedBatches}")
        check("the oldest were dropped: the newest batch was processed, in order", processed.last() == n.toLong() && processed == processed.sorted(), processed.takeLast(10))
        check("state: totals, queue, status", st.recorded.motionAccepted == processed.size.toLong() && st.queued == 0 && st.status?.outboxEnvelopes == processed.size.toULong(), st)
        check("core called on the SDK thread only", slow.threads.isNotEmpty() && slow.threads.all { it == "tacit-sdk" }, slow.threads.toSet())
        tacit.close()

        val fake = FakeClient()
        val t = Tacit(fake)
        t.setNetworkState(NetworkState(online = false, unmetered = false))
        val offline = withTimeout(5000) { t.state.first { it.status?.network?.online == false } }
        check("StateFlow follows the network state set on the SDK thread", offline.status?.network == NetworkState(false, false) && fake.network == NetworkState(false, false))
        fake.keysError = TacitException.InvalidInput("up before down")
        t.recordKeys(listOf(KeyPress(KeyClass.LETTER, 10, 20, null, null)))
        val failedState = withTimeout(5000) { t.state.first { it.recordFailures > 0 } }
        check("a refused record call is counted with its failure", failedState.lastFailure is TacitFailure.FixInput, failedState)
        t.recordPhraseEntry("1234", listOf(KeyPress(KeyClass.DIGIT, 10, 20, null, null)))
        t.refresh()
        check("phrase entries counted", t.state.value.recorded.phraseEntries == 1L)
        check("register goes through", t.register("token").deviceId == "ab".repeat(16))
        fake.authError = TacitException.DeviceRevoked("revoked by admin")
        val revoked = expectThrows<TacitFailure.Reregister>("authenticate failure arrives as TacitFailure") { runBlocking { t.authenticate("n".repeat(16)) } }
        check("the failure is the state's last failure", t.state.value.lastFailure === revoked)
        fake.authError = TacitException.RateLimited("429", null)
        expectThrows<TacitFailure.RetryLater>("rate limited -> RetryLater") { runBlocking { t.authenticate(null) } }
        expectThrows<TacitFailure.FixInput>("zero upload budget -> FixInput") { runBlocking { t.uploadNow(0) } }
        fake.upload = summary(sent = 5, stored = 3, remaining = 2, outOfTime = true)
        val up = t.uploadNow(25_000)
        check("uploadNow passes the budget", up.outOfTime && fake.uploadBudget == 25_000UL)
        check("scheduled run maps out-of-time to more work", t.runScheduledUpload(25_000) is UploadRunResult.MoreWork)
        check("uploadInput from the status", t.uploadInput(UploadPlatform.IOS_APP_REFRESH, true, false, false).outboxBytes == 100L)
        check("seal seals", t.seal().envelopes == 1U && fake.sealed == 1)
        t.close()
        check("close seals what is pending", fake.sealed == 2 && t.state.value.closed)
        t.recordMotion(reading(1))
        check("records after close are dropped and counted", t.state.value.droppedBatches == 1L)
        expectThrows<TacitFailure.Internal>("operations after close fail") { runBlocking { t.seal() } }
        check("core called on the SDK thread only (operations)", fake.threads.all { it == "tacit-sdk" }, fake.threads.toSet())
    }
}

fun unitTests() {
    conversionTests()
    collectorTests()
    keystrokeTests()
    schedulerTests()
    keyStoreTests()
    errorMappingTests()
    facadeTests()
}
