// End-to-end test of the Swift bindings against the real gateway, tacit-backend (Linux, built in the
// trixie chroot by bindings/run-tests.sh; compiled into the same module as the generated
// tacit.swift). Environment: TACIT_URL, TACIT_PUBLIC_KEY, TACIT_KEY_ID,
// TACIT_USER, TACIT_TOKEN, TACIT_TOKEN2, TACIT_DATA_DIR, TACIT_TEST_ADMIN_TOKEN. Progress goes to
// stderr; stdout gets exactly one line, "N passed, N failed". Same scenario as Python,
// except the positive foreign-signer case: Linux Swift has no Ed25519/P-256 library of
// its own (CryptoKit is Apple-only, swift-crypto cannot be fetched), so only a failing
// foreign key store is exercised. The signed verdict is verified with libsodium, a C
// library from Debian (libsodium-dev in the chroot), imported through CSodium.modulemap.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif
import CSodium

var passed = 0
var failed = 0

func eprint(_ s: String) {
    FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
}

func check(_ name: String, _ cond: Bool, _ detail: @autoclosure () -> Any = "") {
    if cond {
        passed += 1
        eprint("  ok   \(name)")
    } else {
        failed += 1
        eprint("  FAIL \(name) \(detail())")
    }
}

func env(_ name: String) -> String {
    guard let v = ProcessInfo.processInfo.environment[name] else { fatalError("\(name) is not set") }
    return v
}

func expectError<T>(_ name: String, _ matches: (Error) -> Bool, _ body: () throws -> T) {
    do {
        let r = try body()
        check(name, false, "no error, got \(r)")
    } catch {
        check(name, matches(error), "wrong error \(error)")
    }
}

func expectErrorAsync<T>(_ name: String, _ matches: (Error) -> Bool, _ body: () async throws -> T) async {
    do {
        let r = try await body()
        check(name, false, "no error, got \(r)")
    } catch {
        check(name, matches(error), "wrong error \(error)")
    }
}

/// The labels of a Prometheus series, `{a="x",b="y"}` (backslash escapes undone).
func metricLabels(_ text: Substring) -> [String: String] {
    var labels: [String: String] = [:]
    var rest = text.drop(while: { $0 == "{" })
    while let eq = rest.firstIndex(of: "=") {
        let key = rest[..<eq].trimmingCharacters(in: CharacterSet(charactersIn: " ,"))
        var i = rest.index(after: eq)
        guard i < rest.endIndex, rest[i] == "\"" else { break }
        i = rest.index(after: i)
        var value = ""
        while i < rest.endIndex, rest[i] != "\"" {
            if rest[i] == "\\", rest.index(after: i) < rest.endIndex { i = rest.index(after: i) }
            value.append(rest[i])
            i = rest.index(after: i)
        }
        labels[key] = value
        rest = i < rest.endIndex ? rest[rest.index(after: i)...] : ""
    }
    return labels
}

/// `POST /v1/devices/{id}/revoke` with the gateway's admin token (an administrator's
/// act); the HTTP status, 0 if the request failed.
func revokeDevice(_ deviceId: String) async -> Int {
    var req = URLRequest(url: URL(string: env("TACIT_URL") + "/v1/devices/\(deviceId)/revoke")!)
    req.httpMethod = "POST"
    req.setValue("Bearer " + env("TACIT_TEST_ADMIN_TOKEN"), forHTTPHeaderField: "Authorization")
    return await withCheckedContinuation { cont in
        URLSession.shared.dataTask(with: req) { _, resp, _ in
            cont.resume(returning: (resp as? HTTPURLResponse)?.statusCode ?? 0)
        }.resume()
    }
}

/// Base64url without padding (a part of a compact JWS) to bytes.
func b64url(_ s: String) -> Data? {
    var t = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    while t.count % 4 != 0 { t += "=" }
    return Data(base64Encoded: t)
}

func fetch(_ url: String) async -> Data? {
    await withCheckedContinuation { cont in
        URLSession.shared.dataTask(with: URL(string: url)!) { data, _, _ in cont.resume(returning: data) }.resume()
    }
}

/// Why a verdict is not believed.
enum VerdictRefusal: Error, Equatable {
    case malformed(String), unknownKey, badSignature, wrongIssuer, expired, wrongNonce
}

/// Verifies a verdict as the app's own server would: the header says EdDSA and the
/// verdict type, its kid is a key of the gateway's JWKS (fetched with URLSession), the
/// Ed25519 signature verifies (libsodium's crypto_sign_verify_detached: Linux Swift has
/// no CryptoKit), the issuer is the gateway's, the token has not expired and carries our
/// nonce. Returns the claims.
func verifyVerdict(_ token: String, nonce: String) async throws -> [String: Any] {
    let parts = token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
    guard parts.count == 3, let h = b64url(parts[0]), let c = b64url(parts[1]), let sig = b64url(parts[2]),
          let header = try? JSONSerialization.jsonObject(with: h) as? [String: Any],
          let claims = try? JSONSerialization.jsonObject(with: c) as? [String: Any]
    else { throw VerdictRefusal.malformed("not a compact JWS") }
    guard header["alg"] as? String == "EdDSA", header["typ"] as? String == "tacit-verdict+jwt",
          let kid = header["kid"] as? String
    else { throw VerdictRefusal.malformed("not a verdict header") }
    guard let data = await fetch(env("TACIT_URL") + "/.well-known/jwks.json"),
          let jwks = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
          let keys = jwks["keys"] as? [[String: Any]],
          let jwk = keys.first(where: { $0["kid"] as? String == kid })
    else { throw VerdictRefusal.unknownKey }
    guard jwk["kty"] as? String == "OKP", jwk["crv"] as? String == "Ed25519",
          let x = (jwk["x"] as? String).flatMap(b64url), x.count == 32, sig.count == 64
    else { throw VerdictRefusal.malformed("not an Ed25519 key or signature") }
    guard sodium_init() >= 0 else { throw VerdictRefusal.malformed("libsodium did not start") }
    let message = Array((parts[0] + "." + parts[1]).utf8)
    guard crypto_sign_verify_detached([UInt8](sig), message, UInt64(message.count), [UInt8](x)) == 0
    else { throw VerdictRefusal.badSignature }
    guard claims["iss"] as? String == "tacit" else { throw VerdictRefusal.wrongIssuer }
    guard let exp = (claims["exp"] as? NSNumber)?.int64Value, exp >= Int64(Date().timeIntervalSince1970) - 5
    else { throw VerdictRefusal.expired }
    guard claims["nonce"] as? String == nonce else { throw VerdictRefusal.wrongNonce }
    return claims
}

/// The gateway's counters from `GET /metrics` (Prometheus text format): stored,
/// duplicates, rejected (all reasons), records (feature records in stored envelopes) and
/// devices (registered); a series not yet present counts 0. Empty if the fetch fails.
func serverStats() async -> [String: Int] {
    let url = URL(string: env("TACIT_URL") + "/metrics")!
    let data: Data? = await withCheckedContinuation { cont in
        URLSession.shared.dataTask(with: url) { data, _, _ in cont.resume(returning: data) }.resume()
    }
    guard let data, let text = String(data: data, encoding: .utf8) else { return [:] }
    var stats = ["stored": 0, "duplicates": 0, "rejected": 0, "records": 0, "devices": 0]
    for raw in text.split(separator: "\n") {
        let line = raw.trimmingCharacters(in: .whitespaces)
        if line.isEmpty || line.hasPrefix("#") { continue }
        guard let space = line.lastIndex(of: " "),
              let value = Double(line[line.index(after: space)...].trimmingCharacters(in: .whitespaces))
        else { continue }
        let series = line[..<space].trimmingCharacters(in: .whitespaces)
        let brace = series.firstIndex(of: "{") ?? series.endIndex
        let name = String(series[..<brace])
        let key: String?
        switch name {
        case "tacit_envelopes_total":
            key = ["stored": "stored", "duplicate": "duplicates", "rejected": "rejected"][
                metricLabels(series[brace...])["status"] ?? ""]
        case "tacit_feature_records_total": key = "records"
        case "tacit_devices_registered_total": key = "devices"
        default: key = nil
        }
        if let key { stats[key, default: 0] += Int(value) }
    }
    return stats
}

func config(_ dataDir: String, publicKey: Data? = nil) -> TacitConfig {
    TacitConfig(
        backendUrl: env("TACIT_URL"),
        backendPublicKey: publicKey ?? Data(base64Encoded: env("TACIT_PUBLIC_KEY"))!,
        backendKeyId: env("TACIT_KEY_ID"),
        dataDir: dataDir,
        userId: env("TACIT_USER"),
        upload: defaultUploadSettings()
    )
}

func nowNs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1e9) }

let sec: Int64 = 1_000_000_000

/// Synthetic walking at 1.8 steps/s from `start` (Unix ns): gravity on z plus step and
/// stride harmonics.
func walking(start: Int64, seconds: Double = 30, rate: Double = 50) -> [MotionReading] {
    let n = Int(seconds * rate)
    return (0..<n).map { i in
        let s = Double(i) / rate
        let ph = 2 * Double.pi * 1.8 * s
        let noise = 0.05 * sin(Double(i) * 12.9898) * cos(Double(i) * 78.233)
        let v = 2.5 * sin(ph) + 0.8 * sin(2 * ph + 0.5) + 0.4 * sin(0.5 * ph) + noise
        return MotionReading(
            timestampNs: start + Int64(Double(i) * 1e9 / rate),
            accel: Vector3(x: 1.2 * sin(0.5 * ph + 0.3) + 0.3 * sin(ph + 1.0), y: 0.6 * cos(0.5 * ph) + noise, z: 9.81 + v),
            gyro: Vector3(x: 0.3 * sin(0.5 * ph), y: 0.2 * cos(ph), z: 0.1 * sin(ph))
        )
    }
}

func keyClass(_ c: Character) -> KeyClass {
    if c == "\u{8}" { return .backspace }
    if c == " " { return .space }
    if c.isNumber { return .digit }
    if c.isLetter { return .letter }
    return .punctuation
}

/// Key presses for text ("\u{8}" = backspace) with plausible, varying timings.
func typing(_ text: String, startNs: Int64) -> [KeyPress] {
    var down = startNs
    var out: [KeyPress] = []
    for (i, c) in text.enumerated() {
        let d = Double(i)
        let hold = Int64((95 + 20 * cos(d * 1.3)) * 1e6)
        out.append(KeyPress(keyClass: keyClass(c), downNs: down, upNs: down + hold, pressure: 0.5 + 0.1 * sin(d), area: 0.1))
        down += Int64((150 + 40 * sin(d * 0.7) + (c == " " ? 60 : 0)) * 1e6)
    }
    return out
}

let freeText = String(repeating: "the quick brown fox jumps over the lazy dog, 1234 times! ", count: 2)
    .replacingOccurrences(of: "dog,", with: "dgo\u{8}\u{8}og,")
let phraseText = "tacit-phrase"

final class ListLogger: Logger, @unchecked Sendable {
    private let lock = NSLock()
    private var records: [String] = []
    func log(level: LogLevel, target: String, message: String) {
        lock.lock(); defer { lock.unlock() }
        records.append("\(level) \(target) \(message)")
    }
    var count: Int { lock.lock(); defer { lock.unlock() }; return records.count }
}

final class BrokenKeyStore: DeviceKeyStore, @unchecked Sendable {
    func algorithm() -> KeyAlgorithm { .ed25519 }
    func publicKey() throws -> Data { throw KeyStoreError.Unavailable(message: "no secure hardware") }
    func sign(message: Data) throws -> Data { throw KeyStoreError.Unavailable(message: "no secure hardware") }
}

/// Records 30 s of walking from `start` (Unix ns), then a free-text block and one phrase
/// entry (about 60 s in all; the extractors want time to move forward); seals.
func recordAndSeal(_ client: TacitClient, _ label: String, start: Int64) throws -> SealReport {
    let motion = try client.recordMotion(samples: walking(start: start))
    check("\(label): motion accepted", motion.accepted == 1500 && motion.dropped == 0, motion)
    check("\(label): motion gave gait windows", motion.windows > 0 && motion.featureRecords > 0, motion)
    let free = typing(freeText, startNs: start + 31 * sec)
    let keys = try client.recordKeys(events: free)
    check("\(label): \(free.count) free-text keys accepted", keys.accepted == UInt64(free.count), keys)
    let phrase = try client.recordPhraseEntry(phrase: phraseText, events: typing(phraseText, startNs: start + 56 * sec))
    check("\(label): phrase entry recorded", phrase.featureRecords >= 1, phrase)
    let records = motion.featureRecords + keys.featureRecords + phrase.featureRecords
    let sealed = try client.seal()
    check("\(label): sealed every record", sealed.envelopes >= 1 && UInt64(sealed.records) == records, "\(sealed) vs \(records)")
    return sealed
}

func scenario() async throws {
    let data = env("TACIT_DATA_DIR")
    try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)

    let settings = defaultUploadSettings()
    check("default upload settings", settings.batchSize > 0 && settings.maxAttempts > 0, settings)

    let logger = ListLogger()
    setLogger(logger: logger, level: .debug)

    expectError("bad config -> InvalidConfig", { if case TacitError.InvalidConfig = $0 { return true }; return false }) {
        try TacitClient(config: config(data + "/bad", publicKey: Data(count: 5)), keyStore: nil)
    }

    var wrongId = config(data + "/bad2")
    wrongId.backendKeyId = String(repeating: "00", count: 8)
    expectError("key id mismatch -> InvalidConfig", { if case TacitError.InvalidConfig = $0 { return true }; return false }) {
        try TacitClient(config: wrongId, keyStore: nil)
    }

    let client = try TacitClient(config: config(data + "/main"), keyStore: nil)
    var st = try client.status()
    check("fresh client is not registered", !st.registered && st.deviceId == nil, st)
    await expectErrorAsync("upload before registration -> NotRegistered", { if case TacitError.NotRegistered = $0 { return true }; return false }) {
        try await client.uploadPending()
    }
    await expectErrorAsync("authenticate before registration -> NotRegistered", { if case TacitError.NotRegistered = $0 { return true }; return false }) {
        _ = try await client.authenticate(includeFresh: true)
    }

    await expectErrorAsync("bad token -> InvalidEnrolmentToken", { if case TacitError.InvalidEnrolmentToken = $0 { return true }; return false }) {
        try await client.registerDevice(enrolmentToken: "no-such-token")
    }
    let info = try await client.registerDevice(enrolmentToken: env("TACIT_TOKEN"))
    check("registered", info.deviceId.count == 32 && info.userId == env("TACIT_USER"), info)
    st = try client.status()
    check("status after registration", st.registered && st.deviceId == info.deviceId, st)

    check("deviceId() is the registered id", client.deviceId() == info.deviceId, client.deviceId())

    expectError("negative timestamp -> InvalidInput", { if case TacitError.InvalidInput = $0 { return true }; return false }) {
        try client.recordMotion(samples: [MotionReading(timestampNs: -1, accel: Vector3(x: 0, y: 0, z: 9.8), gyro: nil)])
    }
    let nan = try client.recordMotion(samples: [MotionReading(timestampNs: nowNs() - 300 * sec, accel: Vector3(x: .nan, y: 0, z: 9.8), gyro: nil)])
    check("NaN reading is dropped, not accepted", nan.accepted == 0 && nan.dropped == 1, nan)

    let sealed = try recordAndSeal(client, "built-in key", start: nowNs() - 200 * sec)
    st = try client.status()
    check("outbox holds the envelopes", st.outboxEnvelopes == UInt64(sealed.envelopes) && st.outboxBytes > 0, st)

    let up = try await client.uploadPending()
    check("upload stored everything",
          up.stored == UInt64(sealed.envelopes) && up.rejected == 0 && up.failed == 0 && up.remaining == 0, up)
    st = try client.status()
    check("outbox empty after upload",
          st.outboxEnvelopes == 0 && st.acknowledgedTotal >= UInt64(sealed.envelopes) && st.lastUploadUnixMs != nil, st)
    var stats = await serverStats()
    check("server stored the records",
          stats["stored"] == Int(sealed.envelopes) && stats["records"] == Int(sealed.records) && stats["rejected"] == 0, stats)

    let again = try await client.uploadPending()
    check("nothing left to upload", again.sent == 0 && again.remaining == 0, again)

    try client.setNetworkState(state: NetworkState(online: false, unmetered: false))
    _ = try recordAndSeal(client, "offline", start: nowNs() - 130 * sec)
    let off = try await client.uploadPending()
    check("offline upload is skipped", off.sent == 0 && off.skippedReason != nil && off.remaining > 0, off)
    try client.setNetworkState(state: NetworkState(online: true, unmetered: true))
    let on = try await client.uploadPending()
    check("online again uploads", on.stored == off.remaining && on.remaining == 0, on)

    // Authentication against the real endpoint: nobody is enrolled on this gateway yet,
    // so the honest answer is step_up with every factor "no template"; the fresh phrase
    // entry travels with the request and leaves the outbox.
    _ = try client.recordPhraseEntry(phrase: phraseText, events: typing(phraseText, startNs: nowNs() - 20 * sec))
    // The app's own server issued this nonce; the verdict comes back signed with it.
    let nonce = (0..<24).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement()! }.map(String.init).joined()
    let auth = try await client.authenticate(includeFresh: true, nonce: nonce)
    check("authenticate answers step_up before enrolment",
          auth.decision == .stepUp && !auth.degraded && auth.consecutiveRejects == 0
              && auth.estimatedFar == 1.0 && auth.confidence == 0.0 && auth.farFloor == 0.0
              && Set(auth.factors.map { $0.factor }) == Set(["gait", "keystroke-fixed"])
              && auth.factors.allSatisfy { $0.state == .noTemplate && $0.meanLlr == nil }, auth)
    let afterAuth = try client.status()
    check("fresh envelope travels with the request",
          auth.envelopesAccepted == 1 && auth.envelopesRejected == 0 && afterAuth.outboxEnvelopes == 0, auth)
    do {
        let claims = try await verifyVerdict(auth.verdict, nonce: nonce)
        let iat = (claims["iat"] as? NSNumber)?.int64Value ?? 0
        let exp = (claims["exp"] as? NSNumber)?.int64Value ?? 0
        check("verdict verifies with libsodium's Ed25519 (JWKS, issuer, expiry, nonce)",
              claims["sub"] as? String == env("TACIT_USER") && claims["device"] as? String == info.deviceId
                  && claims["decision"] as? String == "step_up" && exp - iat == 120, claims)
    } catch {
        check("verdict verifies with libsodium's Ed25519 (JWKS, issuer, expiry, nonce)", false, error)
    }
    let parts = auth.verdict.split(separator: ".").map(String.init)
    let forgedClaims = String(decoding: b64url(parts[1]) ?? Data(), as: UTF8.self)
        .replacingOccurrences(of: "\"step_up\"", with: "\"accept\"")
    let forged = Data(forgedClaims.utf8).base64EncodedString()
        .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
    do {
        _ = try await verifyVerdict(parts[0] + "." + forged + "." + parts[2], nonce: nonce)
        check("a verdict altered to accept does not verify", false, "verified")
    } catch {
        check("a verdict altered to accept does not verify", error as? VerdictRefusal == .badSignature, error)
    }
    do {
        _ = try await verifyVerdict(auth.verdict, nonce: "another-nonce-0123456789")
        check("the verdict is bound to its nonce", false, "verified")
    } catch {
        check("the verdict is bound to its nonce", error as? VerdictRefusal == .wrongNonce, error)
    }
    await expectErrorAsync("malformed nonce -> InvalidInput", { if case TacitError.InvalidInput = $0 { return true }; return false }) {
        try await client.authenticate(includeFresh: false, nonce: "too short")
    }
    let againAuth = try await client.authenticate(includeFresh: false)
    check("a second request right after is accepted (increasing request times)",
          againAuth.decision == .stepUp && againAuth.envelopesAccepted == 0, againAuth)

    do {
        _ = try TacitClient(config: config(data + "/broken"), keyStore: BrokenKeyStore())
        check("unavailable key store -> KeyStore error", false, "no error")
    } catch TacitError.KeyStore(let message) {
        check("unavailable key store -> KeyStore error", true)
        check("key store's message crosses the FFI", message.contains("no secure hardware"), message)
    }
    stats = await serverStats()
    check("server counted one device, no rejections", stats["devices"] == 1 && stats["rejected"] == 0, stats)

    // An administrator revokes the device: the app sees DeviceRevoked (register again),
    // a case of its own, not a server message to parse.
    let status = await revokeDevice(info.deviceId)
    check("device revoked by the admin", (200..<300).contains(status), status)
    await expectErrorAsync("revoked device -> DeviceRevoked", { if case TacitError.DeviceRevoked = $0 { return true }; return false }) {
        try await client.authenticate(includeFresh: false)
    }

    check("logger received records", logger.count > 0, "\(logger.count) records")
}

do {
    try await scenario()
} catch {
    eprint("unexpected error: \(error)")
    check("scenario ran to the end", false)
}
print("\(passed) passed, \(failed) failed")
fflush(stdout)
exit(failed == 0 ? 0 : 1)
