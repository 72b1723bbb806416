// Helpers of the platform layer's test runner: counters, fakes (clock, client, key
// backends) and the gateway's admin calls. Compiled into one module with the generated
// tacit.swift and the layer's sources (see bindings/run-tests.sh, step swift-platform).
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import CSodium

var passed = 0
var failed = 0

func eprint(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
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

func section(_ name: String) {
    eprint("== \(name)")
}

/// Whether `body` throws a `TacitFailure` whose action satisfies `matches`.
func expectFailure<T>(_ name: String, _ matches: (TacitFailure.Action) -> Bool, _ body: () async throws -> T) async {
    do {
        let r = try await body()
        check(name, false, "no error, got \(r)")
    } catch let f as TacitFailure {
        check(name, matches(f.action), "wrong failure \(f)")
    } catch {
        check(name, false, "not a TacitFailure: \(error)")
    }
}

func approx(_ a: Double, _ b: Double, _ eps: Double = 1e-9) -> Bool { abs(a - b) <= eps }

func approx(_ a: Vector3?, _ b: Vector3, _ eps: Double = 1e-9) -> Bool {
    guard let a else { return false }
    return approx(a.x, b.x, eps) && approx(a.y, b.y, eps) && approx(a.z, b.z, eps)
}

/// Waits (polling) until `cond` holds or `seconds` pass; returns whether it held.
func eventually(_ seconds: Double = 5, _ cond: () -> Bool) async -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if cond() { return true }
        try? await Task.sleep(nanoseconds: 5_000_000)
    }
    return cond()
}

/// A lock-protected value for test fakes shared across threads.
final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ v: T) { value = v }
    func get() -> T { lock.lock(); defer { lock.unlock() }; return value }
    func set(_ v: T) { lock.lock(); value = v; lock.unlock() }
    func mutate<R>(_ f: (inout T) -> R) -> R { lock.lock(); defer { lock.unlock() }; return f(&value) }
}

/// A clock the tests move by hand.
final class FakeClock: SensorClock, @unchecked Sendable {
    private let state: Locked<(wall: Int64, up: Int64)>
    init(wallNs: Int64, uptimeNs: Int64) { state = Locked((wallNs, uptimeNs)) }
    func wallNs() -> Int64 { state.get().wall }
    func uptimeNs() -> Int64 { state.get().up }
    /// Both clocks advance by `ns` (time passes).
    func advance(_ ns: Int64) { state.mutate { $0.wall += ns; $0.up += ns } }
    /// Only the wall clock moves (the user or NTP set it).
    func jumpWall(_ ns: Int64) { state.mutate { $0.wall += ns } }
}

/// A sink that keeps what the keystroke recorder hands on.
final class ListSink: KeystrokeSink, @unchecked Sendable {
    let blocks = Locked<[[KeyPress]]>([])
    let phrases = Locked<[(String, [KeyPress])]>([])
    func recordKeys(_ presses: [KeyPress]) { blocks.mutate { $0.append(presses) } }
    func recordPhraseEntry(phrase: String, events: [KeyPress]) { phrases.mutate { $0.append((phrase, events)) } }
}

func clientStatus(registered: Bool = true, outbox: UInt64 = 0) -> ClientStatus {
    ClientStatus(registered: registered, deviceId: registered ? String(repeating: "ab", count: 16) : nil,
                 outboxEnvelopes: outbox, outboxBytes: outbox * 1000, evictedTotal: 0, rejectedTotal: 0,
                 acknowledgedTotal: 0, pendingRecords: 0, sealError: nil, lastUploadUnixMs: nil,
                 network: NetworkState(online: true, unmetered: true), backendKeyId: "00", keyListSerial: 0)
}

func summary(sent: UInt64 = 0, stored: UInt64 = 0, failed: UInt64 = 0, remaining: UInt64 = 0,
             skipped: String? = nil, outOfTime: Bool = false, error: String? = nil,
             retryAfterMs: UInt64? = nil) -> UploadSummary {
    UploadSummary(sent: sent, stored: stored, duplicate: 0, rejected: 0, failed: failed, remaining: remaining,
                  skippedReason: skipped, outOfTime: outOfTime, error: error, retryAfterMs: retryAfterMs)
}

/// A client double for the facade tests: records what reaches it; `recordMotion` can be
/// held on a gate to simulate a slow core.
final class FakeClient: TacitClientProtocol, @unchecked Sendable {
    let motion = Locked<[[MotionReading]]>([])
    let keys = Locked<[[KeyPress]]>([])
    let phrases = Locked<[String]>([])
    let entered = Locked(0)
    let gate = Locked<DispatchSemaphore?>(nil)
    let keysError = Locked<TacitError?>(nil)
    let authError = Locked<TacitError?>(nil)
    let seals = Locked(0)

    func authenticate(includeFresh: Bool, nonce: String?) async throws -> AuthResult {
        if let e = authError.get() { throw e }
        return AuthResult(decision: .stepUp, confidence: 0, estimatedFar: 1, farFloor: 0, llr: 0, reason: "", degraded: false,
                          consecutiveRejects: 0, factors: [], envelopesAccepted: 0, envelopesRejected: 0, verdict: "x.y.z")
    }
    func deviceId() -> String { String(repeating: "ab", count: 16) }
    func recordFace(frame: CameraFrame) throws -> RecordReport { RecordReport(accepted: 1, dropped: 0, windows: 0, featureRecords: 0) }
    func recordKeys(events: [KeyPress]) throws -> RecordReport {
        if let e = keysError.get() { throw e }
        keys.mutate { $0.append(events) }
        return RecordReport(accepted: UInt64(events.count), dropped: 0, windows: 0, featureRecords: 0)
    }
    func recordMotion(samples: [MotionReading]) throws -> RecordReport {
        entered.mutate { $0 += 1 }
        if let g = gate.get() { g.wait() }
        motion.mutate { $0.append(samples) }
        return RecordReport(accepted: UInt64(samples.count), dropped: 1, windows: 0, featureRecords: 0)
    }
    func recordPhraseEntry(phrase: String, events: [KeyPress]) throws -> RecordReport {
        phrases.mutate { $0.append(phrase) }
        return RecordReport(accepted: UInt64(events.count), dropped: 0, windows: 0, featureRecords: 1)
    }
    func refreshBackendKeys() async throws -> UInt64 { 0 }
    func registerDevice(enrolmentToken: String) async throws -> DeviceInfo {
        DeviceInfo(deviceId: deviceId(), userId: "u")
    }
    func seal() throws -> SealReport {
        seals.mutate { $0 += 1 }
        return SealReport(envelopes: 1, records: 1, evicted: 0)
    }
    func setNetworkState(state: NetworkState) throws {}
    func status() throws -> ClientStatus { clientStatus(outbox: UInt64(motion.get().count)) }
    func uploadPending() async throws -> UploadSummary { summary() }
    func uploadPendingWithin(budgetMs: UInt64) async throws -> UploadSummary { summary() }
}

/// A P-256-shaped fake backend (no real curve arithmetic: Linux Swift has no P-256
/// library): keys are 0x04 ‖ 64 bytes, signatures syntactically valid DER. Keys live in
/// `store`, shared between backend instances like a Keychain.
final class FakeP256Backend: KeyBackend, @unchecked Sendable {
    let store: Locked<[String: Data]>
    let generated = Locked(0)
    init(store: Locked<[String: Data]> = Locked([:])) { self.store = store }
    var algorithm: KeyAlgorithm { .ecdsaP256Sha256 }
    func generate(alias: String) throws -> Data {
        generated.mutate { $0 += 1 }
        let key = Data([0x04] + (0..<64).map { _ in UInt8.random(in: 0...255) })
        store.mutate { $0[alias] = key }
        return key
    }
    func load(alias: String) throws -> Data? { store.get()[alias] }
    func sign(alias: String, data: Data) throws -> Data {
        guard store.get()[alias] != nil else { throw KeyBackendError("no key") }
        let r = [UInt8](repeating: 0x11, count: 32), s = [UInt8](repeating: 0x22, count: 32)
        return Data([0x30, 68, 0x02, 32] + r + [0x02, 32] + s)
    }
    func delete(alias: String) throws { store.mutate { $0[alias] = nil } }
}

/// A backend whose every operation fails (a locked device, a broken enclave).
struct FailingBackend: KeyBackend {
    var algorithm: KeyAlgorithm { .ecdsaP256Sha256 }
    func generate(alias: String) throws -> Data { throw KeyBackendError("device locked") }
    func load(alias: String) throws -> Data? { throw KeyBackendError("device locked") }
    func sign(alias: String, data: Data) throws -> Data { throw KeyBackendError("device locked") }
    func delete(alias: String) throws { throw KeyBackendError("device locked") }
}

/// A backend returning malformed keys or signatures (a buggy adapter).
struct MalformedBackend: KeyBackend {
    let badKey: Bool
    var algorithm: KeyAlgorithm { .ecdsaP256Sha256 }
    func generate(alias: String) throws -> Data { badKey ? Data(count: 64) : Data([0x04] + [UInt8](repeating: 1, count: 64)) }
    func load(alias: String) throws -> Data? { nil }
    func sign(alias: String, data: Data) throws -> Data { Data(count: 64) }  // raw r‖s, not DER
    func delete(alias: String) throws {}
}

/// Real Ed25519 keys with libsodium (tests only: Linux Swift has no P-256 library), kept
/// in memory: lets the key-store contract run against the real gateway.
final class SodiumEd25519Backend: KeyBackend, @unchecked Sendable {
    private let keys = Locked<[String: (pk: [UInt8], sk: [UInt8])]>([:])
    var algorithm: KeyAlgorithm { .ed25519 }
    init() { _ = sodium_init() }
    func generate(alias: String) throws -> Data {
        var pk = [UInt8](repeating: 0, count: 32), sk = [UInt8](repeating: 0, count: 64)
        guard crypto_sign_keypair(&pk, &sk) == 0 else { throw KeyBackendError("keypair failed") }
        keys.mutate { $0[alias] = (pk, sk) }
        return Data(pk)
    }
    func load(alias: String) throws -> Data? { keys.get()[alias].map { Data($0.pk) } }
    func sign(alias: String, data: Data) throws -> Data {
        guard let k = keys.get()[alias] else { throw KeyBackendError("no key") }
        var sig = [UInt8](repeating: 0, count: 64)
        let m = [UInt8](data)
        guard crypto_sign_detached(&sig, nil, m, UInt64(m.count), k.sk) == 0 else { throw KeyBackendError("sign failed") }
        return Data(sig)
    }
    func delete(alias: String) throws { keys.mutate { $0[alias] = nil } }
}

func sodiumVerify(_ sig: Data, _ message: Data, _ pk: Data) -> Bool {
    let m = [UInt8](message)
    return crypto_sign_verify_detached([UInt8](sig), m, UInt64(m.count), [UInt8](pk)) == 0
}

// MARK: gateway

func env(_ name: String) -> String {
    guard let v = ProcessInfo.processInfo.environment[name] else { fatalError("\(name) is not set") }
    return v
}

/// An HTTP request to the gateway (admin token when `admin`); status and body.
func http(_ method: String, _ path: String, admin: Bool = false) async -> (Int, Data) {
    guard let url = URL(string: env("TACIT_URL") + path) else { return (0, Data()) }
    var req = URLRequest(url: url)
    req.httpMethod = method
    if admin { req.setValue("Bearer " + env("TACIT_TEST_ADMIN_TOKEN"), forHTTPHeaderField: "Authorization") }
    return await withCheckedContinuation { cont in
        URLSession.shared.dataTask(with: req) { data, resp, _ in
            cont.resume(returning: ((resp as? HTTPURLResponse)?.statusCode ?? 0, data ?? Data()))
        }.resume()
    }
}

/// A fresh one-time enrolment token for the test user (admin API).
func newEnrolmentToken() async -> String? {
    let (status, body) = await http("POST", "/v1/users/\(env("TACIT_USER"))/enrolment-tokens", admin: true)
    guard (200..<300).contains(status),
          let obj = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else { return nil }
    return obj["token"] as? String
}

/// The gateway's counters from `GET /metrics`: stored, rejected (all reasons), records, devices.
func serverStats() async -> [String: Int] {
    let (_, data) = await http("GET", "/metrics")
    var stats = ["stored": 0, "rejected": 0, "records": 0, "devices": 0]
    for raw in String(decoding: data, as: UTF8.self).split(separator: "\n") where !raw.hasPrefix("#") {
        guard let space = raw.lastIndex(of: " "), let value = Double(raw[raw.index(after: space)...]) else { continue }
        let series = String(raw[..<space])
        let key: String?
        if series.hasPrefix("tacit_envelopes_total{") {
            key = series.contains("status=\"stored\"") ? "stored" : series.contains("status=\"rejected\"") ? "rejected" : nil
        } else if series.hasPrefix("tacit_feature_records_total") {
            key = "records"
        } else if series.hasPrefix("tacit_devices_registered_total") {
            key = "devices"
        } else {
            key = nil
        }
        if let key { stats[key, default: 0] += Int(value) }
    }
    return stats
}

/// The claims of a compact JWS (no signature check: the bindings test does that).
func jwsClaims(_ token: String) -> [String: Any]? {
    let parts = token.split(separator: ".").map(String.init)
    guard parts.count == 3 else { return nil }
    var t = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    while t.count % 4 != 0 { t += "=" }
    guard let d = Data(base64Encoded: t) else { return nil }
    return try? JSONSerialization.jsonObject(with: d) as? [String: Any]
}

/// Synthetic walking at 1.8 steps/s as CoreMotion would report it: in g, CoreMotion's
/// sign (gravity (0, 0, -1) face-up), timestamps in seconds since boot from `startUptime`.
func coreMotionWalking(startUptime: Double, seconds: Double = 30, rate: Double = 50) -> [DeviceMotionSample] {
    let g = MotionConversion.standardGravity
    return (0..<Int(seconds * rate)).map { i in
        let s = Double(i) / rate
        let ph = 2 * Double.pi * 1.8 * s
        let noise = 0.05 * sin(Double(i) * 12.9898) * cos(Double(i) * 78.233)
        let v = 2.5 * sin(ph) + 0.8 * sin(2 * ph + 0.5) + 0.4 * sin(0.5 * ph) + noise
        // The Android-convention acceleration of the bindings test, turned into CoreMotion's.
        let ax = 1.2 * sin(0.5 * ph + 0.3) + 0.3 * sin(ph + 1.0), ay = 0.6 * cos(0.5 * ph) + noise, az = 9.81 + v
        return DeviceMotionSample(
            timestamp: startUptime + s,
            userAcceleration: Vector3(x: -ax / g, y: -ay / g, z: -az / g + 1),
            gravity: Vector3(x: 0, y: 0, z: -1),
            rotationRate: Vector3(x: 0.3 * sin(0.5 * ph), y: 0.2 * cos(ph), z: 0.1 * sin(ph)))
    }
}

/// Types `text` on `recorder` with plausible timings from `startNs` (Unix ns): fast
/// typing overlaps keys (the next down before the previous up), so the downs and ups are
/// fed in time order, as a keypad delivers them. Returns the end time.
@discardableResult
func typeText(_ text: String, on recorder: KeystrokeRecorder, startNs: Int64) -> Int64 {
    var down = startNs
    var events: [(t: Int64, isDown: Bool, c: Character, i: Int)] = []
    for (i, c) in text.enumerated() {
        let d = Double(i)
        let hold = Int64((95 + 20 * cos(d * 1.3)) * 1e6)
        events.append((down, true, c, i))
        events.append((down + hold, false, c, i))
        down += Int64((150 + 40 * sin(d * 0.7) + (c == " " ? 60 : 0)) * 1e6)
    }
    events.sort { ($0.t, $0.i) < ($1.t, $1.i) }
    for e in events {
        if e.isDown {
            recorder.keyDown(character: e.c, timeNs: e.t, pressure: 0.5 + 0.1 * sin(Double(e.i)), area: 0.1)
        } else {
            recorder.keyUp(character: e.c, timeNs: e.t)
        }
    }
    return down
}
