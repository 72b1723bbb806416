// Unit tests of the platform layer's pure Swift parts (no gateway needed): conversion,
// collector, keystroke recorder, scheduler and runner, key-store contract, error
// mapping, and the actor facade over a fake client.
import Foundation
import CSodium

let sec: Int64 = 1_000_000_000
let ms: Int64 = 1_000_000

func conversionTests() {
    section("MotionConversion")
    let clock = FakeClock(wallNs: 1_700_000_000 * sec, uptimeNs: 1_000 * sec)
    let conv = MotionConversion(clock: clock)

    let faceUp = conv.reading(from: DeviceMotionSample(timestamp: 999.5, userAcceleration: Vector3(x: 0, y: 0, z: 0),
                                                       gravity: Vector3(x: 0, y: 0, z: -1), rotationRate: nil))
    check("face-up at rest: gravity (0,0,-1) g -> (0,0,+9.80665) m/s²", approx(faceUp?.accel, Vector3(x: 0, y: 0, z: 9.80665)), faceUp as Any)
    check("boot time -> epoch: 0.5 s before now", faceUp?.timestampNs == 1_700_000_000 * sec - 500 * ms, faceUp as Any)
    check("no rotation rate -> gyro nil", faceUp != nil && faceUp?.gyro == nil)

    let r = conv.reading(from: DeviceMotionSample(timestamp: 1_000, userAcceleration: Vector3(x: 0.1, y: -0.2, z: 0.3),
                                                  gravity: Vector3(x: 0, y: -1, z: 0), rotationRate: Vector3(x: 0.5, y: -1, z: 2)))
    check("g -> m/s² with the sign flipped: -(user + gravity) × 9.80665",
          approx(r?.accel, Vector3(x: -0.980665, y: 11.76798, z: -2.941995), 1e-9), r as Any)
    check("rotation rate passes through (rad/s)", r?.gyro == Vector3(x: 0.5, y: -1, z: 2), r as Any)
    check("raw accelerometer: same conversion",
          approx(conv.reading(from: AccelerometerSample(timestamp: 1_000, acceleration: Vector3(x: 1, y: 0, z: 0)), rotationRate: nil)?.accel,
                 Vector3(x: -9.80665, y: 0, z: 0)))
    check("one anchor so far", conv.anchors == 1, conv.anchors)

    // Small drift within 5 s keeps the offset (no jitter between nearby samples) ...
    clock.advance(2 * sec)
    clock.jumpWall(500 * ms)
    check("drift under 1 s within 5 s: offset kept", conv.epochNs(uptimeSeconds: 1_001) == 1_700_000_001 * sec && conv.anchors == 1,
          conv.epochNs(uptimeSeconds: 1_001) as Any)
    // ... which is re-measured once 5 s have passed.
    clock.advance(4 * sec)
    check("after 5 s the offset is re-measured", conv.epochNs(uptimeSeconds: 1_001) == 1_700_000_001 * sec + 500 * ms && conv.anchors == 2,
          conv.epochNs(uptimeSeconds: 1_001) as Any)
    // A wall-clock jump (the user sets the clock an hour ahead) re-anchors at once.
    clock.advance(1 * sec)
    clock.jumpWall(3_600 * sec)
    check("wall-clock jump > 1 s: re-anchored at once",
          conv.epochNs(uptimeSeconds: 1_001) == 1_700_003_601 * sec + 500 * ms && conv.anchors == 3,
          conv.epochNs(uptimeSeconds: 1_001) as Any)
    clock.jumpWall(-3_600 * sec)
    check("jump back: re-anchored again", conv.epochNs(uptimeSeconds: 1_001) == 1_700_000_001 * sec + 500 * ms && conv.anchors == 4)

    let before = conv.dropped
    check("NaN acceleration -> dropped",
          conv.reading(from: DeviceMotionSample(timestamp: 1_000, userAcceleration: Vector3(x: .nan, y: 0, z: 0),
                                                gravity: Vector3(x: 0, y: 0, z: -1), rotationRate: nil)) == nil)
    check("infinite acceleration -> dropped",
          conv.reading(from: AccelerometerSample(timestamp: 1_000, acceleration: Vector3(x: 0, y: .infinity, z: 0)), rotationRate: nil) == nil)
    check("NaN timestamp -> dropped", conv.epochNs(uptimeSeconds: .nan) == nil)
    check("negative timestamp -> dropped", conv.epochNs(uptimeSeconds: -1) == nil && conv.epochNs(uptimeNs: -1) == nil)
    check("overflowing timestamp -> dropped", conv.epochNs(uptimeSeconds: 1e12) == nil && conv.epochNs(uptimeNs: .max - 10) == nil)
    check("every refusal counted", conv.dropped == before + 7, conv.dropped - before)
    let nanGyro = conv.reading(from: DeviceMotionSample(timestamp: 1_000, userAcceleration: Vector3(x: 0, y: 0, z: 0),
                                                        gravity: Vector3(x: 0, y: 0, z: -1), rotationRate: Vector3(x: .nan, y: 0, z: 0)))
    check("NaN rotation rate: gyro dropped, acceleration kept", nanGyro != nil && nanGyro?.gyro == nil)
    let early = MotionConversion(clock: FakeClock(wallNs: 10 * sec, uptimeNs: 1_000 * sec))
    check("a time before 1970 -> dropped", early.epochNs(uptimeSeconds: 1) == nil && early.dropped == 1)
}

func collectorTests() {
    section("MotionCollector")
    let clock = FakeClock(wallNs: 1_700_000_000 * sec, uptimeNs: 10_000 * sec)
    let batches = Locked<[[MotionReading]]>([])
    let c = MotionCollector(conversion: MotionConversion(clock: clock)) { b in batches.mutate { $0.append(b) } }
    for s in coreMotionWalking(startUptime: 9_000, seconds: 2.4) { c.add(s) }
    check("50 Hz for 2.4 s: two full batches of 50", batches.get().map(\.count) == [50, 50], batches.get().map(\.count))
    c.stop()
    check("stop() hands on the partial batch", batches.get().map(\.count) == [50, 50, 20], batches.get().map(\.count))
    c.stop()
    check("a second stop() sends nothing", batches.get().count == 3)
    let all = batches.get().flatMap { $0 }
    check("timestamps increase by 20 ms", zip(all, all.dropFirst()).allSatisfy { $1.timestampNs - $0.timestampNs == 20 * ms })
    check("stats", c.stats == MotionCollectorStats(readings: 120, batches: 3, withGyro: 120, dropped: 0), c.stats)

    let paired = Locked<[MotionReading]>([])
    let p = MotionCollector(conversion: MotionConversion(clock: clock), batchSize: 1) { b in paired.mutate { $0 += b } }
    let a = Vector3(x: 0, y: 0, z: -1)
    p.add(GyroSample(timestamp: 100.000, rotationRate: Vector3(x: 1, y: 0, z: 0)))
    p.add(AccelerometerSample(timestamp: 100.010, acceleration: a))
    p.add(AccelerometerSample(timestamp: 100.030, acceleration: a))
    p.add(GyroSample(timestamp: 100.040, rotationRate: Vector3(x: 2, y: 0, z: 0)))
    p.add(GyroSample(timestamp: 100.035, rotationRate: Vector3(x: 3, y: 0, z: 0)))  // older than the held one
    p.add(AccelerometerSample(timestamp: 100.045, acceleration: a))
    p.add(AccelerometerSample(timestamp: 100.025, acceleration: a))  // gyro 15 ms newer: still paired
    p.add(AccelerometerSample(timestamp: 100.045, acceleration: Vector3(x: .nan, y: 0, z: 0)))
    let got = paired.get()
    check("gyro 10 ms old is paired", got.count > 0 && got[0].gyro?.x == 1, got)
    check("gyro 30 ms old is not (gyro nil)", got.count > 1 && got[1].gyro == nil, got)
    check("the newest gyro is used, an older late one ignored", got.count > 2 && got[2].gyro?.x == 2, got)
    check("a gyro up to 20 ms newer than the reading is paired", got.count > 3 && got[3].gyro?.x == 2, got)
    check("a NaN reading is dropped and counted", got.count == 4 && p.stats.dropped == 1, p.stats)
    check("accelerometer in g converted", approx(got.first?.accel, Vector3(x: 0, y: 0, z: 9.80665)))
    check("requests 50 Hz", MotionCollector.updateInterval == 0.02 && MotionCollector.defaultBatchSize == 50)
}

func keystrokeTests() {
    section("KeystrokeRecorder")
    let classes: [(Character, KeyClass)] = [("a", .letter), ("Z", .letter), ("é", .letter), ("7", .digit), (" ", .space),
                                             (".", .punctuation), ("€", .punctuation), ("\u{8}", .backspace), ("\n", .enter)]
    check("classify", classes.allSatisfy { KeystrokeRecorder.classify($0.0) == $0.1 },
          classes.map { KeystrokeRecorder.classify($0.0) })

    let sink = ListSink()
    let rec = KeystrokeRecorder(sink: sink)
    let secret = "Secret42!"
    typeText(secret, on: rec, startNs: 1_700_000_000 * sec)
    let text = String(describing: rec) + String(reflecting: rec) + { var s = ""; dump(rec, to: &s); return s }()
    check("the recorder's description, debug description and dump hold no typed text",
          !text.contains("Secret") && !text.contains("42") && !text.contains("!") && !text.contains("letter"), text)
    rec.endFreeTextBlock()
    let block = sink.blocks.get().first ?? []
    check("free-text block handed to recordKeys", sink.blocks.get().count == 1 && block.count == secret.count, block.count)
    check("only the classes are passed on",
          block.map(\.keyClass) == [.letter, .letter, .letter, .letter, .letter, .letter, .digit, .digit, .punctuation])
    check("down/up times and touch values kept", block.allSatisfy { $0.upNs > $0.downNs && $0.pressure != nil && $0.area == 0.1 })
    check("presses in press order", zip(block, block.dropFirst()).allSatisfy { $0.downNs < $1.downNs })
    rec.endFreeTextBlock()
    check("an empty block is not handed on", sink.blocks.get().count == 1)

    // Overlapping presses of the same class (rollover): matched in press order.
    let t0 = 1_700_000_100 * sec
    rec.keyDown(.letter, timeNs: t0)
    rec.keyDown(.letter, timeNs: t0 + 50 * ms)
    rec.keyUp(.letter, timeNs: t0 + 100 * ms)
    rec.keyUp(.letter, timeNs: t0 + 150 * ms)
    // An up without a down; a down held 3 s (expires when the next event comes); an event
    // back in time; a down still pending when the block ends; NaN pressure.
    rec.keyUp(.digit, timeNs: t0 + 200 * ms)
    rec.keyDown(.space, timeNs: t0 + 300 * ms)
    rec.keyDown(.digit, timeNs: t0 + 3_400 * ms, pressure: .nan)
    rec.keyUp(.digit, timeNs: t0 + 3_500 * ms)
    rec.keyUp(.space, timeNs: t0 + 3_600 * ms)
    rec.keyDown(.letter, timeNs: t0 + 3_000 * ms)
    rec.keyDown(.enter, timeNs: t0 + 3_700 * ms)
    rec.keyDown(.letter, timeNs: -5)
    rec.endFreeTextBlock()
    let b2 = sink.blocks.get().last ?? []
    check("rollover: (0,100) and (50,150)",
          b2.count == 3 && b2[0].downNs == t0 && b2[0].upNs == t0 + 100 * ms && b2[1].downNs == t0 + 50 * ms && b2[1].upNs == t0 + 150 * ms, b2)
    check("NaN pressure becomes nil", b2.count == 3 && b2[2].pressure == nil && b2[2].keyClass == .digit, b2)
    let st = rec.stats
    check("unmatched ups counted (digit, space after expiry)", st.unmatchedUps == 2, st)
    check("stale downs counted (held > 2 s, pending at block end)", st.staleDowns == 2, st)
    check("out-of-order and invalid events counted", st.outOfOrder == 1 && st.invalid == 1, st)

    // A block the app never ends stays bounded: presses past the bound are counted.
    let capped = KeystrokeRecorder(sink: ListSink())
    let t1 = 1_700_000_200 * sec
    for i in 0..<(KeystrokeRecorder.maxPendingPresses + 3) {
        capped.keyDown(.letter, timeNs: t1 + Int64(i) * 20 * ms)
        capped.keyUp(.letter, timeNs: t1 + Int64(i) * 20 * ms + 10 * ms)
    }
    check("presses past the bound are dropped and counted", capped.stats.overflow == 3, capped.stats)
    check("recorded count", st.recorded == UInt64(secret.count) + 3, st)

    typeText("1234", on: rec, startNs: t0 + 10 * sec)
    rec.phraseEntry("1234")
    let phrase = sink.phrases.get().first
    check("phraseEntry hands the phrase and its presses to recordPhraseEntry",
          phrase?.0 == "1234" && phrase?.1.count == 4 && phrase?.1.allSatisfy { $0.keyClass == .digit } == true)
    typeText("99", on: rec, startNs: t0 + 20 * sec)
    rec.discard()
    rec.endFreeTextBlock()
    check("discard() forgets the entry", sink.blocks.get().count == 2 && sink.phrases.get().count == 1)
    check("no phrase kept in the recorder", !String(reflecting: rec).contains("1234"))
}

func schedulerTests() {
    section("UploadScheduler")
    check("budgets: WorkManager 9 min, app refresh 25 s, processing 5 min, foreground 60 s",
          UploadScheduler.budgetMs(for: .androidWorkManager) == 540_000 && UploadScheduler.budgetMs(for: .iosAppRefresh) == 25_000
              && UploadScheduler.budgetMs(for: .iosProcessing) == 300_000 && UploadScheduler.budgetMs(for: .foreground) == 60_000)
    let now: UInt64 = 1_700_000_000_000
    func cond(_ platform: UploadPlatform = .iosAppRefresh, envelopes: UInt64 = 3, bytes: UInt64 = 30_000, last: UInt64? = nil,
              online: Bool = true, unmetered: Bool = false, wifiOnly: Bool = false, battery: Bool = false) -> UploadConditions {
        UploadConditions(outboxEnvelopes: envelopes, outboxBytes: bytes, maxOutboxBytes: 1_000_000, lastUploadUnixMs: last,
                         nowUnixMs: now, online: online, unmetered: unmetered, wifiOnly: wifiOnly, batteryLow: battery, platform: platform)
    }
    for p in UploadPlatform.allCases {
        let d = UploadScheduler.decide(cond(p))
        check("\(p): due -> now with its budget", d.runNow && d.delayMs == 0 && d.budgetMs == UploadScheduler.budgetMs(for: p)
                  && d.requiredNetwork == .any && d.reason == .due, d)
    }
    var d = UploadScheduler.decide(cond(envelopes: 0, bytes: 0))
    check("empty outbox -> check again in 15 min", !d.runNow && d.delayMs == 900_000 && d.reason == .outboxEmpty, d)
    d = UploadScheduler.decide(cond(online: false))
    check("offline -> wait for the network", !d.runNow && d.reason == .waitingForNetwork, d)
    d = UploadScheduler.decide(cond(wifiOnly: true))
    check("wifiOnly on a metered network -> wait, needs unmetered",
          !d.runNow && d.reason == .waitingForNetwork && d.requiredNetwork == .unmetered, d)
    d = UploadScheduler.decide(cond(.androidWorkManager, unmetered: true, wifiOnly: true))
    check("wifiOnly on Wi-Fi -> now, constraint unmetered", d.runNow && d.requiredNetwork == .unmetered, d)
    d = UploadScheduler.decide(cond(battery: true))
    check("low battery, room in the outbox -> in 1 h", !d.runNow && d.delayMs == 3_600_000 && d.reason == .batteryLow, d)
    d = UploadScheduler.decide(cond(bytes: 850_000, battery: true))
    check("low battery but outbox 85 % full -> now", d.runNow && d.reason == .outboxNearlyFull, d)
    d = UploadScheduler.decide(cond(last: now - 120_000))
    check("background upload 2 min ago -> in 3 min", !d.runNow && d.delayMs == 180_000 && d.reason == .recentlyUploaded, d)
    d = UploadScheduler.decide(cond(.foreground, last: now - 120_000))
    check("foreground ignores the spacing", d.runNow, d)
    d = UploadScheduler.decide(cond(last: now - 400_000))
    check("last upload 6.7 min ago -> now", d.runNow, d)

    section("UploadRunner mapping")
    func out(_ r: Result<UploadSummary, Error>, _ n: Int = 0) -> UploadRunOutcome { UploadRunner.outcome(of: r, consecutiveFailures: n) }
    let full = summary(sent: 3, stored: 3)
    check("everything stored -> done", out(.success(full)) == .done(full))
    let cut = summary(sent: 2, stored: 2, remaining: 5, outOfTime: true)
    check("out of time with progress -> more work in 1 min", out(.success(cut)) == .moreWork(cut, rescheduleAfterMs: 60_000))
    let left = summary(sent: 2, stored: 2, remaining: 1)
    check("envelopes remain -> more work", out(.success(left)) == .moreWork(left, rescheduleAfterMs: 60_000))
    if case .retryLater(let after, let f) = out(.success(summary(remaining: 4, skipped: "offline"))) {
        check("skipped offline -> retry later (30 s first)", after == 30_000 && f.message.contains("offline"), f)
    } else { check("skipped offline -> retry later", false) }
    check("nothing delivered (network) -> retry later with backoff",
          out(.success(summary(sent: 4, failed: 4, remaining: 4)), 2).nextRunAfterMs == 120_000)
    if case .retryLater(let after, let f) = out(.success(summary(sent: 8, stored: 4, failed: 4, remaining: 4,
                                                                 error: "network error: refused")), 1) {
        check("an upload error after progress -> retry later with backoff, and why",
              after == 60_000 && f.message.contains("refused"), f)
    } else { check("an upload error after progress -> retry later", false) }
    check("a throttled upload -> retry after the backend's Retry-After when longer than the backoff",
          out(.success(summary(sent: 4, failed: 4, remaining: 4, error: "throttled", retryAfterMs: 600_000)), 0)
              .nextRunAfterMs == 600_000)
    let cutMidBatch = summary(sent: 32, stored: 16, failed: 16, remaining: 24, outOfTime: true)
    check("a batch cut by the budget -> more work, not a failure",
          out(.success(cutMidBatch)) == .moreWork(cutMidBatch, rescheduleAfterMs: 60_000))
    let cases: [(TacitError, String)] = [
        (.Network(message: "down", retryAfterMs: nil), "retry"), (.RateLimited(message: "slow", retryAfterMs: nil), "retry"),
        (.StaleRequest(message: "clock"), "retry"), (.NonceUsed(message: "used"), "retry"),
        (.Storage(message: "disk"), "retry"), (.KeyStore(message: "locked"), "retry"), (.Internal(message: "bug"), "retry"),
        (.DeviceRevoked(message: "r"), "stop"), (.DeviceCloned(message: "c"), "stop"), (.UnknownDevice(message: "u"), "stop"),
        (.NotRegistered(message: "n"), "stop"), (.InvalidInput(message: "budget 0"), "stop"), (.InvalidConfig(message: "c"), "stop"),
    ]
    for (e, want) in cases {
        let o = out(.failure(e), 1)
        switch (o, want) {
        case (.retryLater(let after, let f), "retry"): check("\(e) -> retry later after 60 s", after == 60_000 && f.underlying == e, o)
        case (.stop(let f), "stop"): check("\(e) -> stop", f.underlying == e, o)
        default: check("\(e) -> \(want)", false, o)
        }
    }
    check("backoff doubles and stops at 1 h",
          UploadRunner.backoffMs(consecutiveFailures: 0) == 30_000 && UploadRunner.backoffMs(consecutiveFailures: 3) == 240_000
              && UploadRunner.backoffMs(consecutiveFailures: 50) == 3_600_000)
    check("a known delay longer than the backoff wins", UploadRunner.backoffMs(consecutiveFailures: 0, atLeast: 90_000) == 90_000)
}

/// Uploads that fail twice with a network error, then succeed.
final class ScriptedUploader: PendingUploader, @unchecked Sendable {
    let results = Locked<[Result<UploadSummary, TacitError>]>([])
    let budgets = Locked<[UInt64]>([])
    func uploadPendingWithin(budgetMs: UInt64) async throws -> UploadSummary {
        budgets.mutate { $0.append(budgetMs) }
        let r = results.mutate { $0.isEmpty ? .success(summary()) : $0.removeFirst() }
        return try r.get()
    }
}

func runnerTests() async {
    section("UploadRunner")
    let up = ScriptedUploader()
    up.results.set([.failure(.Network(message: "a", retryAfterMs: nil)), .failure(.Network(message: "b", retryAfterMs: nil)), .success(summary(sent: 1, stored: 1)),
                    .failure(.Network(message: "c", retryAfterMs: nil)), .failure(.DeviceRevoked(message: "gone"))])
    let runner = UploadRunner(uploader: up)
    var delays: [UInt64?] = []
    for _ in 0..<5 { delays.append(await runner.runOnce(budgetMs: 25_000).nextRunAfterMs) }
    check("backoff 30 s, 60 s; success resets it; revoked stops",
          delays == [30_000, 60_000, UploadScheduler.idleCheckMs, 30_000, nil], delays)
    check("the budget reaches uploadPendingWithin", up.budgets.get() == Array(repeating: 25_000, count: 5))
}

func keyStoreTests() {
    section("PlatformKeyStore")
    let keychain = Locked<[String: Data]>([:])
    let backend = FakeP256Backend(store: keychain)
    let store = PlatformKeyStore(backend: backend)
    do {
        let pk = try store.publicKey()
        check("public key: 65 bytes starting 0x04", pk.count == 65 && pk.first == 0x04, pk.count)
        check("algorithm ECDSA P-256", store.algorithm() == .ecdsaP256Sha256)
        check("same key on the second call, created once", try store.publicKey() == pk && backend.generated.get() == 1)
        let reopened = PlatformKeyStore(backend: FakeP256Backend(store: keychain))
        check("same alias reopens the same key", try reopened.publicKey() == pk)
        let sig = try reopened.sign(message: Data("hello".utf8))
        check("signature is DER", KeyFormat.isDERSignature(sig), [UInt8](sig))
        let other = PlatformKeyStore(alias: "other", backend: FakeP256Backend(store: keychain))
        check("another alias is another key", try other.publicKey() != pk)
        try store.deleteKey()
        check("deleteKey removes it; the next use creates a new one", try store.publicKey() != pk && backend.generated.get() == 2)
    } catch {
        check("fake P-256 backend works", false, error)
    }
    let signFirst = PlatformKeyStore(alias: "fresh", backend: FakeP256Backend())
    check("sign before publicKey creates the key", (try? signFirst.sign(message: Data([1]))) != nil)

    func unavailable(_ body: () throws -> Data) -> String? {
        do {
            _ = try body()
            return nil
        } catch KeyStoreError.Unavailable(let m) {
            return m
        } catch {
            return "wrong error \(error)"
        }
    }
    let failing = PlatformKeyStore(backend: FailingBackend())
    let m1 = unavailable { try failing.publicKey() }
    check("backend failure on publicKey -> KeyStoreError.Unavailable with the cause", m1?.contains("device locked") == true, m1 as Any)
    let m2 = unavailable { try failing.sign(message: Data()) }
    check("backend failure on sign -> Unavailable with the cause", m2?.contains("device locked") == true, m2 as Any)
    let m3 = unavailable { try PlatformKeyStore(backend: MalformedBackend(badKey: true)).publicKey() }
    check("a malformed public key -> Unavailable", m3?.contains("malformed") == true, m3 as Any)
    let m4 = unavailable { try PlatformKeyStore(backend: MalformedBackend(badKey: false)).sign(message: Data()) }
    check("a raw (non-DER) signature -> Unavailable", m4?.contains("malformed") == true, m4 as Any)
    do {
        try failing.deleteKey()
        check("delete failure -> Unavailable", false)
    } catch KeyStoreError.Unavailable(let m) {
        check("delete failure -> Unavailable", m.contains("device locked"), m)
    } catch {
        check("delete failure -> Unavailable", false, error)
    }

    let der = Data([0x30, 0x08, 0x02, 0x02, 0x00, 0x80, 0x02, 0x02, 0x01, 0x02])
    check("DER shape accepted", KeyFormat.isDERSignature(der))
    check("DER length mismatch / wrong tag / raw refused",
          !KeyFormat.isDERSignature(Data([0x30, 0x09] + der.dropFirst(2))) && !KeyFormat.isDERSignature(Data([0x31] + der.dropFirst()))
              && !KeyFormat.isDERSignature(Data(count: 64)))

    let sodium = PlatformKeyStore(alias: "ed", backend: SodiumEd25519Backend())
    do {
        let pk = try sodium.publicKey()
        let msg = Data("register me".utf8)
        let sig = try sodium.sign(message: msg)
        check("Ed25519 backend (libsodium): 32-byte key, 64-byte signature that verifies",
              pk.count == 32 && sig.count == 64 && sodiumVerify(sig, msg, pk) && !sodiumVerify(sig, Data("other".utf8), pk))
    } catch {
        check("Ed25519 backend works", false, error)
    }
}

func failureMappingTests() {
    section("TacitFailure mapping")
    let all: [(TacitError, TacitFailure.Action)] = [
        (.InvalidConfig(message: "m"), .fixInput),
        (.InvalidInput(message: "m"), .fixInput),
        (.Storage(message: "m"), .retryLater(afterMs: nil)),
        (.Network(message: "m", retryAfterMs: nil), .retryLater(afterMs: nil)),
        (.InvalidEnrolmentToken(message: "m"), .reRegister(.invalidToken)),
        (.DeviceRevoked(message: "m"), .reRegister(.revoked)),
        (.DeviceCloned(message: "m"), .reRegister(.cloned)),
        (.UnknownDevice(message: "m"), .reRegister(.unknownDevice)),
        (.StaleRequest(message: "m"), .retryLater(afterMs: nil)),
        (.RateLimited(message: "m", retryAfterMs: 5_000), .retryLater(afterMs: 5_000)),
        (.NonceUsed(message: "m"), .retryLater(afterMs: 0)),
        (.KeyListRefused(message: "m"), .internal),
        (.Server(code: "weird", message: "m"), .internal),
        (.NotRegistered(message: "m"), .reRegister(.notRegistered)),
        (.KeyStore(message: "m"), .keyStore),
        (.Internal(message: "m"), .internal),
    ]
    for (e, action) in all {
        let f = TacitFailure(e)
        check("\(e) -> \(action)", f.action == action && f.underlying == e && f.message.contains("m"), f)
    }
    check("Server keeps its code in the message", TacitFailure(TacitError.Server(code: "weird", message: "m")).message == "weird: m")
    check("KeyStoreError -> keyStore", TacitFailure(KeyStoreError.Unavailable(message: "x")).action == .keyStore)
    check("other errors -> internal", TacitFailure(CancellationError()).action == .internal)
    let f = TacitFailure(action: .retryLater(afterMs: 5), message: "x")
    check("a TacitFailure maps to itself", TacitFailure(f) == f)
}

func facadeTests() async {
    section("Tacit facade (fake client)")
    let fake = FakeClient()
    let gate = DispatchSemaphore(value: 0)
    fake.gate.set(gate)
    let tacit = Tacit(client: fake, upload: defaultUploadSettings(), queueCapacity: 4)
    let seen = Locked<[TacitState]>([])
    let stream = tacit.status
    let watcher = Task {
        for await s in stream { seen.mutate { $0.append(s) } }
    }
    func batch(_ i: Int) -> [MotionReading] {
        [MotionReading(timestampNs: Int64(i), accel: Vector3(x: 0, y: 0, z: 9.8), gyro: nil)]
    }
    tacit.recordMotion(batch(0))
    check("the first batch reaches the (blocked) core", await eventually { fake.entered.get() == 1 })
    let start = Date()
    var slowest = 0.0
    for i in 1...8 {
        let t = Date()
        tacit.recordMotion(batch(i))
        slowest = max(slowest, Date().timeIntervalSince(t))
    }
    check("record calls return immediately while the core is busy", slowest < 0.05 && Date().timeIntervalSince(start) < 0.2, slowest)
    check("full queue: the 4 oldest waiting batches dropped and counted",
          tacit.state.droppedBatches == 4 && tacit.state.droppedItems == 4 && tacit.state.queuedBatches == 4, tacit.state)
    fake.gate.set(nil)
    gate.signal()
    await tacit.flush()
    let order = fake.motion.get().map { $0[0].timestampNs }
    check("the core got batch 0 then the newest four, in order", order == [0, 5, 6, 7, 8], order)
    check("readings the core dropped are counted", tacit.state.droppedByCore == 5, tacit.state)

    fake.keysError.set(.InvalidInput(message: "bad keys"))
    tacit.recordKeys([KeyPress(keyClass: .letter, downNs: 1, upNs: 2, pressure: nil, area: nil)])
    await tacit.flush()
    check("a refused batch is counted with its failure",
          tacit.state.failedBatches == 1 && tacit.state.lastError?.action == .fixInput, tacit.state)
    let rec = tacit.keystrokeRecorder()
    rec.keyDown(.digit, timeNs: 10)
    rec.keyUp(.digit, timeNs: 20)
    rec.phraseEntry("0000")
    await tacit.flush()
    check("the keystroke recorder feeds the facade", fake.phrases.get() == ["0000"])

    fake.authError.set(.DeviceRevoked(message: "revoked"))
    await expectFailure("authenticate maps the core's error", { $0 == .reRegister(.revoked) }) {
        try await tacit.authenticate(nonce: nil)
    }
    check("the failure is published", tacit.state.lastError?.action == .reRegister(.revoked))
    let run = await tacit.runUpload(platform: .iosAppRefresh)
    check("runUpload with nothing left -> done", run == .done(summary()), run)
    let decision = await tacit.uploadDecision(platform: .iosProcessing)
    check("uploadDecision from the status", decision?.runNow == true && decision?.budgetMs == 300_000, decision as Any)

    await tacit.close()
    await watcher.value
    let states = seen.get()
    check("the status stream started with the initial state", states.first == TacitState(), states.first as Any)
    check("the stream yielded the drop count", states.contains { $0.droppedBatches == 4 })
    check("the stream yielded the core's status", states.contains { $0.client?.registered == true && $0.client?.outboxEnvelopes == 5 })
    check("the stream ended with the closed state", states.last?.closed == true, states.last as Any)
    check("close() sealed pending records", fake.seals.get() == 1)
    tacit.recordMotion(batch(99))
    await tacit.flush()
    check("records after close are ignored", fake.motion.get().count == 5)
    await expectFailure("operations after close -> fixInput", { $0 == .fixInput }) { try await tacit.seal() }
    var late: [TacitState] = []
    for await s in tacit.status { late.append(s) }
    check("a stream opened after close yields the final state and ends", late.count == 1 && late[0].closed)
}

func unitTests() async {
    conversionTests()
    collectorTests()
    keystrokeTests()
    schedulerTests()
    await runnerTests()
    keyStoreTests()
    failureMappingTests()
    await facadeTests()
}
