// End-to-end test of the Kotlin (JVM, JNA) bindings against the real gateway (tacit-backend).
// Run by bindings/run-tests.sh (environment: TACIT_URL, TACIT_PUBLIC_KEY, TACIT_KEY_ID,
// TACIT_USER, TACIT_TOKEN, TACIT_TOKEN2, TACIT_DATA_DIR, TACIT_TEST_ADMIN_TOKEN). Progress goes to
// stderr; stdout gets exactly one line, "N passed, N failed". Same scenario as Python.
package tacit.bindings.test

import java.io.File
import java.math.BigInteger
import java.net.URI
import java.security.KeyFactory
import java.security.KeyPairGenerator
import java.security.SecureRandom
import java.security.Signature
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import java.security.spec.EdECPoint
import java.security.spec.EdECPublicKeySpec
import java.security.spec.NamedParameterSpec
import java.util.Base64
import kotlin.math.PI
import kotlin.math.cos
import kotlin.math.sin
import kotlin.system.exitProcess
import kotlinx.coroutines.runBlocking
import uniffi.tacit.*

var passed = 0
var failed = 0

/** A string member of a flat JSON object (the verdict's header, claims and JWKS keys). */
fun jsonString(json: String, name: String): String? =
    Regex("\"${Regex.escape(name)}\"\\s*:\\s*\"([^\"]*)\"").find(json)?.groupValues?.get(1)

/** An integer member of a flat JSON object. */
fun jsonLong(json: String, name: String): Long? =
    Regex("\"${Regex.escape(name)}\"\\s*:\\s*(-?[0-9]+)").find(json)?.groupValues?.get(1)?.toLong()

/**
 * Verifies a verdict as the app's own server would, with the JDK alone: the header says
 * EdDSA and the verdict type, its kid is a key of the gateway's JWKS, the Ed25519
 * signature verifies (java.security "Ed25519", the JWK's x as an EdECPoint), the issuer
 * is the gateway's, the token has not expired and carries our nonce. Returns the claims
 * JSON; throws SecurityException otherwise.
 */
fun verifyVerdict(token: String, nonce: String): String {
    val parts = token.split('.')
    if (parts.size != 3) throw SecurityException("not a compact JWS")
    val dec = Base64.getUrlDecoder()
    val header = String(dec.decode(parts[0]), Charsets.UTF_8)
    if (jsonString(header, "alg") != "EdDSA" || jsonString(header, "typ") != "tacit-verdict+jwt") {
        throw SecurityException("not a verdict: $header")
    }
    val kid = jsonString(header, "kid") ?: throw SecurityException("no kid")
    val jwks = URI(env("TACIT_URL") + "/.well-known/jwks.json").toURL().readText()
    val jwk = Regex("\\{[^{}]*\\}").findAll(jwks).map { it.value }.firstOrNull { jsonString(it, "kid") == kid }
        ?: throw SecurityException("unknown kid $kid")
    if (jsonString(jwk, "kty") != "OKP" || jsonString(jwk, "crv") != "Ed25519") throw SecurityException("not Ed25519: $jwk")
    // RFC 8032 encoding: y little-endian, the top bit of the last byte is x's parity.
    val x = dec.decode(jsonString(jwk, "x"))
    if (x.size != 32) throw SecurityException("key of ${x.size} bytes")
    val xOdd = (x[31].toInt() and 0x80) != 0
    val le = x.copyOf().also { it[31] = (it[31].toInt() and 0x7f).toByte() }
    val y = BigInteger(1, le.reversedArray())
    val key = KeyFactory.getInstance("Ed25519")
        .generatePublic(EdECPublicKeySpec(NamedParameterSpec.ED25519, EdECPoint(xOdd, y)))
    val ok = Signature.getInstance("Ed25519").run {
        initVerify(key)
        update("${parts[0]}.${parts[1]}".toByteArray(Charsets.US_ASCII))
        verify(dec.decode(parts[2]))
    }
    if (!ok) throw SecurityException("bad signature")
    val claims = String(dec.decode(parts[1]), Charsets.UTF_8)
    if (jsonString(claims, "iss") != "tacit") throw SecurityException("wrong issuer")
    val exp = jsonLong(claims, "exp") ?: throw SecurityException("no exp")
    if (exp < System.currentTimeMillis() / 1000 - 5) throw SecurityException("expired")
    if (jsonString(claims, "nonce") != nonce) throw SecurityException("wrong nonce")
    return claims
}

fun check(name: String, cond: Boolean, detail: Any? = "") {
    if (cond) {
        passed++
        System.err.println("  ok   $name")
    } else {
        failed++
        System.err.println("  FAIL $name $detail")
    }
}

inline fun <reified E : Throwable> expectError(name: String, block: () -> Any?) {
    try {
        val r = block()
        check(name, false, "no error, got $r")
    } catch (e: Throwable) {
        check(name, e is E, "wrong error ${e::class.qualifiedName}: ${e.message}")
    }
}

fun env(name: String): String = System.getenv(name) ?: error("$name is not set")

val metricLine = Regex("""^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$""")
val metricLabel = Regex("""(\w+)="((?:[^"\\]|\\.)*)"""")

/** `POST /v1/devices/{id}/revoke` with the gateway's admin token (an administrator's act). */
fun revokeDevice(deviceId: String) {
    val c = URI(env("TACIT_URL") + "/v1/devices/$deviceId/revoke").toURL().openConnection() as java.net.HttpURLConnection
    c.requestMethod = "POST"
    c.setRequestProperty("Authorization", "Bearer " + env("TACIT_TEST_ADMIN_TOKEN"))
    val status = c.responseCode
    c.disconnect()
    check("device ${deviceId.take(8)}… revoked by the admin", status in 200..299, status)
}

/**
 * The gateway's counters from `GET /metrics` (Prometheus text format): stored, duplicates,
 * rejected (all reasons), records (feature records in stored envelopes) and devices
 * (registered); a series not yet present counts 0.
 */
fun serverStats(): Map<String, Long> {
    val text = URI(env("TACIT_URL") + "/metrics").toURL().readText()
    val stats = mutableMapOf("stored" to 0L, "duplicates" to 0L, "rejected" to 0L, "records" to 0L, "devices" to 0L)
    for (line in text.lines()) {
        val m = metricLine.matchEntire(line.trim()) ?: continue // comments, blank lines
        val (name, labelText, valueText) = m.destructured
        val labels = metricLabel.findAll(labelText).associate { it.groupValues[1] to it.groupValues[2] }
        val key = when (name) {
            "tacit_envelopes_total" -> when (labels["status"]) {
                "stored" -> "stored"
                "duplicate" -> "duplicates"
                "rejected" -> "rejected"
                else -> null
            }
            "tacit_feature_records_total" -> "records"
            "tacit_devices_registered_total" -> "devices"
            else -> null
        } ?: continue
        stats[key] = stats.getValue(key) + (valueText.toDoubleOrNull() ?: error("bad value in: $line")).toLong()
    }
    return stats
}

fun config(dataDir: String, publicKey: ByteArray? = null) = TacitConfig(
    backendUrl = env("TACIT_URL"),
    backendPublicKey = publicKey ?: Base64.getDecoder().decode(env("TACIT_PUBLIC_KEY")),
    backendKeyId = env("TACIT_KEY_ID"),
    dataDir = dataDir,
    userId = env("TACIT_USER"),
    upload = defaultUploadSettings(),
)

/** Synthetic walking at 1.8 steps/s from [start] (Unix ns): gravity on z plus step and stride harmonics. */
fun walking(start: Long, seconds: Double = 30.0, rate: Double = 50.0): List<MotionReading> {
    val n = (seconds * rate).toInt()
    return (0 until n).map { i ->
        val s = i / rate
        val ph = 2 * PI * 1.8 * s
        val noise = 0.05 * sin(i * 12.9898) * cos(i * 78.233)
        val v = 2.5 * sin(ph) + 0.8 * sin(2 * ph + 0.5) + 0.4 * sin(0.5 * ph) + noise
        MotionReading(
            timestampNs = start + (i * 1e9 / rate).toLong(),
            accel = Vector3(1.2 * sin(0.5 * ph + 0.3) + 0.3 * sin(ph + 1.0), 0.6 * cos(0.5 * ph) + noise, 9.81 + v),
            gyro = Vector3(0.3 * sin(0.5 * ph), 0.2 * cos(ph), 0.1 * sin(ph)),
        )
    }
}

fun keyClass(c: Char): KeyClass = when {
    c == '\b' -> KeyClass.BACKSPACE
    c == ' ' -> KeyClass.SPACE
    c.isDigit() -> KeyClass.DIGIT
    c.isLetter() -> KeyClass.LETTER
    else -> KeyClass.PUNCTUATION
}

/** Key presses for text ('\b' = backspace) with plausible, varying timings. */
fun typing(text: String, startNs: Long): List<KeyPress> {
    var down = startNs
    return text.mapIndexed { i, c ->
        val hold = ((95 + 20 * cos(i * 1.3)) * 1e6).toLong()
        val k = KeyPress(keyClass(c), down, down + hold, 0.5 + 0.1 * sin(i.toDouble()), 0.1)
        down += ((150 + 40 * sin(i * 0.7) + (if (c == ' ') 60 else 0)) * 1e6).toLong()
        k
    }
}

val FREE_TEXT = "the quick brown fox jumps over the lazy dog, 1234 times! ".repeat(2).replace("dog,", "dgo\b\bog,")
const val PHRASE = "tacit-phrase"

class ListLogger : Logger {
    val records = java.util.concurrent.ConcurrentLinkedQueue<String>()
    override fun log(level: LogLevel, target: String, message: String) {
        records.add("$level $target $message")
    }
}

/** A foreign key store signing with the JVM's ECDSA P-256 (like Android Keystore). */
class P256KeyStore : DeviceKeyStore {
    private val pair = KeyPairGenerator.getInstance("EC").apply { initialize(ECGenParameterSpec("secp256r1")) }.generateKeyPair()
    var signed = 0

    override fun algorithm() = KeyAlgorithm.ECDSA_P256_SHA256

    override fun publicKey(): ByteArray {
        val w = (pair.public as ECPublicKey).w
        fun fixed(b: BigInteger): ByteArray {
            val raw = b.toByteArray().dropWhile { it == 0.toByte() }.toByteArray()
            return ByteArray(32 - raw.size) + raw
        }
        return byteArrayOf(4) + fixed(w.affineX) + fixed(w.affineY)
    }

    override fun sign(message: ByteArray): ByteArray {
        signed++
        return Signature.getInstance("SHA256withECDSA").run {
            initSign(pair.private)
            update(message)
            sign() // ASN.1 DER, as the protocol wants
        }
    }
}

class BrokenKeyStore : DeviceKeyStore {
    override fun algorithm() = KeyAlgorithm.ED25519
    override fun publicKey(): ByteArray = throw KeyStoreException.Unavailable("no secure hardware")
    override fun sign(message: ByteArray): ByteArray = throw KeyStoreException.Unavailable("no secure hardware")
}

const val SEC = 1_000_000_000L

fun nowNs() = System.currentTimeMillis() * 1_000_000L

/**
 * Records 30 s of walking from [start] (Unix ns), then a free-text block and one phrase
 * entry (about 60 s in all; the extractors want time to move forward); seals.
 */
fun recordAndSeal(client: TacitClient, label: String, start: Long): SealReport {
    val motion = client.recordMotion(walking(start))
    check("$label: motion accepted", motion.accepted == 1500UL && motion.dropped == 0UL, motion)
    check("$label: motion gave gait windows", motion.windows > 0UL && motion.featureRecords > 0UL, motion)
    val free = typing(FREE_TEXT, start + 31 * SEC)
    val keys = client.recordKeys(free)
    check("$label: ${free.size} free-text keys accepted", keys.accepted == free.size.toULong(), keys)
    val phrase = client.recordPhraseEntry(PHRASE, typing(PHRASE, start + 56 * SEC))
    check("$label: phrase entry recorded", phrase.featureRecords >= 1UL, phrase)
    val records = motion.featureRecords + keys.featureRecords + phrase.featureRecords
    val sealed = client.seal()
    check("$label: sealed every record", sealed.envelopes >= 1U && sealed.records.toULong() == records, "$sealed vs $records")
    return sealed
}

suspend fun <T> expectErrorAsync(name: String, cls: Class<*>, block: suspend () -> T) {
    try {
        val r = block()
        check(name, false, "no error, got $r")
    } catch (e: Throwable) {
        check(name, cls.isInstance(e), "wrong error ${e::class.qualifiedName}: ${e.message}")
    }
}

suspend fun scenario() {
    val data = env("TACIT_DATA_DIR")
    File(data).mkdirs()

    val settings = defaultUploadSettings()
    check("default upload settings", settings.batchSize > 0U && settings.maxAttempts > 0U, settings)

    val logger = ListLogger()
    setLogger(logger, LogLevel.DEBUG)

    expectError<TacitException.InvalidConfig>("bad config -> InvalidConfig") {
        TacitClient(config("$data/bad", ByteArray(5)), null)
    }

    expectError<TacitException.InvalidConfig>("key id mismatch -> InvalidConfig") {
        TacitClient(config("$data/bad2").copy(backendKeyId = "00".repeat(8)), null)
    }

    val client = TacitClient(config("$data/main"), null)
    var st = client.status()
    check("fresh client is not registered", !st.registered && st.deviceId == null, st)
    expectErrorAsync("upload before registration -> NotRegistered", TacitException.NotRegistered::class.java) { client.uploadPending() }
    expectErrorAsync("authenticate before registration -> NotRegistered", TacitException.NotRegistered::class.java) { client.authenticate(true) }

    expectErrorAsync("bad token -> InvalidEnrolmentToken", TacitException.InvalidEnrolmentToken::class.java) { client.registerDevice("no-such-token") }
    val info = client.registerDevice(env("TACIT_TOKEN"))
    check("registered", info.deviceId.length == 32 && info.userId == env("TACIT_USER"), info)
    st = client.status()
    check("status after registration", st.registered && st.deviceId == info.deviceId, st)

    check("deviceId() is the registered id", client.deviceId() == info.deviceId, client.deviceId())

    expectError<TacitException.InvalidInput>("negative timestamp -> InvalidInput") {
        client.recordMotion(listOf(MotionReading(-1L, Vector3(0.0, 0.0, 9.8), null)))
    }
    val nan = client.recordMotion(listOf(MotionReading(nowNs() - 300 * SEC, Vector3(Double.NaN, 0.0, 9.8), null)))
    check("NaN reading is dropped, not accepted", nan.accepted == 0UL && nan.dropped == 1UL, nan)

    val sealed = recordAndSeal(client, "built-in key", nowNs() - 200 * SEC)
    st = client.status()
    check("outbox holds the envelopes", st.outboxEnvelopes == sealed.envelopes.toULong() && st.outboxBytes > 0UL, st)

    val up = client.uploadPending()
    check(
        "upload stored everything",
        up.stored == sealed.envelopes.toULong() && up.rejected == 0UL && up.failed == 0UL && up.remaining == 0UL,
        up,
    )
    st = client.status()
    check(
        "outbox empty after upload",
        st.outboxEnvelopes == 0UL && st.acknowledgedTotal >= sealed.envelopes.toULong() && st.lastUploadUnixMs != null,
        st,
    )
    var stats = serverStats()
    check(
        "server stored the records",
        stats["stored"] == sealed.envelopes.toLong() && stats["records"] == sealed.records.toLong() && stats["rejected"] == 0L,
        stats,
    )

    val again = client.uploadPending()
    check("nothing left to upload", again.sent == 0UL && again.remaining == 0UL, again)

    client.setNetworkState(NetworkState(online = false, unmetered = false))
    recordAndSeal(client, "offline", nowNs() - 130 * SEC)
    val off = client.uploadPending()
    check("offline upload is skipped", off.sent == 0UL && off.skippedReason != null && off.remaining > 0UL, off)
    client.setNetworkState(NetworkState(online = true, unmetered = true))
    val on = client.uploadPending()
    check("online again uploads", on.stored == off.remaining && on.remaining == 0UL, on)

    // Authentication against the real endpoint: nobody is enrolled on this gateway yet,
    // so the honest answer is step_up with every factor "no template"; the fresh phrase
    // entry travels with the request and leaves the outbox.
    client.recordPhraseEntry(PHRASE, typing(PHRASE, nowNs() - 20 * SEC))
    // The app's own server issued this nonce; the verdict comes back signed with it.
    val nonce = Base64.getUrlEncoder().withoutPadding().encodeToString(ByteArray(18).also { SecureRandom().nextBytes(it) })
    val auth = client.authenticate(true, nonce)
    check(
        "authenticate answers step_up before enrolment",
        auth.decision == AuthDecision.STEP_UP && !auth.degraded && auth.consecutiveRejects == 0u &&
            auth.estimatedFar == 1.0 && auth.confidence == 0.0 && auth.farFloor == 0.0 &&
            auth.factors.map { it.factor }.toSet() == setOf("gait", "keystroke-fixed") &&
            auth.factors.all { it.state == FactorState.NO_TEMPLATE && it.meanLlr == null },
        auth,
    )
    check(
        "fresh envelope travels with the request",
        auth.envelopesAccepted == 1u && auth.envelopesRejected == 0u && client.status().outboxEnvelopes == 0UL,
        auth,
    )
    try {
        val claims = verifyVerdict(auth.verdict, nonce)
        check(
            "verdict verifies with the JDK's Ed25519 (JWKS, issuer, expiry, nonce)",
            jsonString(claims, "sub") == env("TACIT_USER") && jsonString(claims, "device") == info.deviceId &&
                jsonString(claims, "decision") == "step_up" &&
                jsonLong(claims, "exp")!! - jsonLong(claims, "iat")!! == 120L,
            claims,
        )
    } catch (e: SecurityException) {
        check("verdict verifies with the JDK's Ed25519 (JWKS, issuer, expiry, nonce)", false, e.message)
    }
    val (head, body, sig) = auth.verdict.split('.')
    val claimsJson = String(Base64.getUrlDecoder().decode(body), Charsets.UTF_8)
    val forged = Base64.getUrlEncoder().withoutPadding()
        .encodeToString(claimsJson.replace("\"step_up\"", "\"accept\"").toByteArray(Charsets.UTF_8))
    check(
        "a verdict altered to accept does not verify",
        runCatching { verifyVerdict("$head.$forged.$sig", nonce) }.exceptionOrNull()?.message == "bad signature",
    )
    check(
        "the verdict is bound to its nonce",
        runCatching { verifyVerdict(auth.verdict, "another-nonce-0123456789") }.exceptionOrNull()?.message == "wrong nonce",
    )
    expectErrorAsync("malformed nonce -> InvalidInput", TacitException.InvalidInput::class.java) {
        client.authenticate(false, "too short")
    }
    val againAuth = client.authenticate(false)
    check(
        "a second request right after is accepted (increasing request times)",
        againAuth.decision == AuthDecision.STEP_UP && againAuth.envelopesAccepted == 0u,
        againAuth,
    )

    // Foreign key store: ECDSA P-256 in the JVM; the server verifies every envelope with it.
    val store = P256KeyStore()
    val foreign = TacitClient(config("$data/foreign"), store)
    val finfo = foreign.registerDevice(env("TACIT_TOKEN2"))
    check("foreign key store registered", finfo.deviceId != info.deviceId, finfo)
    val fsealed = recordAndSeal(foreign, "foreign key", nowNs() - 200 * SEC)
    val fup = foreign.uploadPending()
    check("foreign-signed envelopes stored", fup.stored == fsealed.envelopes.toULong() && fup.rejected == 0UL, fup)
    check("foreign key store was asked to sign", store.signed >= fsealed.envelopes.toInt(), "${store.signed} signatures")
    stats = serverStats()
    check("server counted both devices", stats["devices"] == 2L && stats["rejected"] == 0L, stats)

    // An administrator revokes the foreign device: the app sees DeviceRevoked (register
    // again), a case of its own, not a server message to parse.
    revokeDevice(finfo.deviceId)
    expectErrorAsync("revoked device -> DeviceRevoked", TacitException.DeviceRevoked::class.java) { foreign.authenticate(false) }

    try {
        TacitClient(config("$data/broken"), BrokenKeyStore())
        check("unavailable key store -> KeyStore error", false, "no error")
    } catch (e: TacitException.KeyStore) {
        check("unavailable key store -> KeyStore error", true)
        check("key store's message crosses the FFI", e.message.orEmpty().contains("no secure hardware"), e.message)
    }

    check("logger received records", logger.records.isNotEmpty(), "${logger.records.size} records")
}

fun main() {
    try {
        runBlocking { scenario() }
    } catch (e: Throwable) {
        e.printStackTrace()
        check("scenario ran to the end", false)
    }
    println("$passed passed, $failed failed")
    System.out.flush()
    exitProcess(if (failed == 0) 0 else 1)
}
