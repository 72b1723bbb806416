// End-to-end part: the platform layer against the real gateway (tacit-backend started by
// bindings/run-tests.sh; environment as in bindings/tests/swift/main.swift).
import Foundation

func randomNonce() -> String {
    let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
    return String((0..<24).map { _ in alphabet[Int.random(in: 0..<alphabet.count)] })
}

func configuration(_ dir: String, keyStore: DeviceKeyStore? = nil) -> Tacit.Configuration? {
    guard let pk = Data(base64Encoded: env("TACIT_PUBLIC_KEY")) else { return nil }
    return Tacit.Configuration(backendURL: env("TACIT_URL"), backendPublicKey: pk, backendKeyId: env("TACIT_KEY_ID"),
                               dataDirectory: URL(fileURLWithPath: env("TACIT_DATA_DIR")).appendingPathComponent(dir),
                               userId: env("TACIT_USER"), keyStore: keyStore)
}

func endToEnd() async throws {
    section("end to end: facade, built-in key")
    try FileManager.default.createDirectory(atPath: env("TACIT_DATA_DIR"), withIntermediateDirectories: true)
    guard let config = configuration("facade") else {
        check("TACIT_PUBLIC_KEY is base64", false)
        return
    }
    let tacit = try Tacit(configuration: config)
    let seen = Locked<[TacitState]>([])
    let stream = tacit.status
    let watcher = Task { for await s in stream { seen.mutate { $0.append(s) } } }

    check("not registered at first", await !tacit.refreshStatus().registered)
    await expectFailure("a bad token -> reRegister(invalidToken)", { $0 == .reRegister(.invalidToken) }) {
        try await tacit.register(enrolmentToken: "no-such-token")
    }
    let info = try await tacit.register(enrolmentToken: env("TACIT_TOKEN"))
    check("registered", info.deviceId.count == 32 && info.userId == env("TACIT_USER") && tacit.deviceId == info.deviceId, info)

    // CoreMotion-style readings (g, boot-relative seconds) through the conversion: the
    // clock says the phone booted 10,000 s ago; the walk happened 200 s ago.
    let nowNs = Int64(Date().timeIntervalSince1970 * 1e9)
    let clock = FakeClock(wallNs: nowNs, uptimeNs: 10_000 * sec)
    let motion = tacit.motionCollector(conversion: MotionConversion(clock: clock))
    for s in coreMotionWalking(startUptime: 9_800) { motion.add(s) }
    motion.stop()
    check("collector: 1500 readings with gyro in 30 batches",
          motion.stats == MotionCollectorStats(readings: 1500, batches: 30, withGyro: 1500, dropped: 0), motion.stats)

    let keys = tacit.keystrokeRecorder()
    let freeText = String(repeating: "the quick brown fox jumps over the lazy dog, 1234 times! ", count: 2)
    typeText(freeText, on: keys, startNs: nowNs - 169 * sec)
    keys.endFreeTextBlock()
    typeText("tacit-phrase", on: keys, startNs: nowNs - 144 * sec)
    keys.phraseEntry("tacit-phrase")
    check("keystrokes: all presses recorded, none dropped",
          keys.stats.recorded == UInt64(freeText.count + 12) && keys.stats.unmatchedUps == 0 && keys.stats.staleDowns == 0, keys.stats)
    check("the recorder keeps no typed text", !String(reflecting: keys).contains("quick") && !String(reflecting: keys).contains("tacit-phrase"))

    await tacit.flush()
    var st = tacit.state
    check("the core took every batch, none dropped or refused",
          st.droppedBatches == 0 && st.failedBatches == 0 && st.droppedByCore == 0 && st.queuedBatches == 0, st)
    let sealed = try await tacit.seal()
    st = await tacit.refreshStatus()
    check("sealed into the outbox", sealed.envelopes >= 1 && sealed.records > 0 && (st.client?.outboxEnvelopes ?? 0) >= UInt64(sealed.envelopes),
          "\(sealed) \(st)")
    let decision = await tacit.uploadDecision(platform: .iosAppRefresh)
    check("scheduler: due now with the app-refresh budget", decision?.runNow == true && decision?.budgetMs == 25_000, decision as Any)
    let up = try await tacit.uploadNow(budgetMs: decision?.budgetMs ?? 25_000)
    check("upload within the budget stored everything",
          up.stored >= UInt64(sealed.envelopes) && up.rejected == 0 && up.remaining == 0 && !up.outOfTime, up)
    let stats = await serverStats()
    check("the gateway stored the records, none rejected",
          stats["stored"] == Int(up.stored) && (stats["records"] ?? 0) >= Int(sealed.records) && stats["rejected"] == 0, stats)
    let again = await tacit.runUpload(platform: .iosAppRefresh)
    if case .done(let s) = again {
        check("runner: nothing left -> done", s.sent == 0, s)
    } else {
        check("runner: nothing left -> done", false, again)
    }
    let idle = await tacit.uploadDecision(platform: .iosAppRefresh)
    check("scheduler: empty outbox -> later", idle?.runNow == false && idle?.reason == .outboxEmpty, idle as Any)

    try await tacit.setNetwork(online: false, unmetered: false)
    typeText("tacit-phrase", on: keys, startNs: nowNs - 100 * sec)
    keys.phraseEntry("tacit-phrase")
    _ = try await tacit.seal()
    let offline = await tacit.runUpload(platform: .foreground)
    check("runner: offline -> retry later", { if case .retryLater = offline { return true }; return false }(), offline)
    try await tacit.setNetwork(online: true, unmetered: true)
    let online = await tacit.runUpload(platform: .foreground)
    check("runner: online again -> done", { if case .done = online { return true }; return false }(), online)

    let nonce = randomNonce()
    let auth = try await tacit.authenticate(nonce: nonce)
    let claims = jwsClaims(auth.verdict)
    check("authenticate with a nonce: step_up before enrolment, verdict bound to the nonce",
          auth.decision == .stepUp && claims?["nonce"] as? String == nonce && claims?["device"] as? String == info.deviceId,
          "\(auth.decision) \(claims as Any)")
    await expectFailure("malformed nonce -> fixInput", { $0 == .fixInput }) { try await tacit.authenticate(nonce: "too short") }
    await expectFailure("a used nonce -> retryLater at once (ask for a new nonce)", { $0 == .retryLater(afterMs: 0) }) {
        try await tacit.authenticate(nonce: nonce, includeFresh: false)
    }
    let states = seen.get()
    check("status stream: registered, outbox filled, then emptied by the upload",
          states.contains { $0.registered } && states.contains { ($0.client?.outboxEnvelopes ?? 0) > 0 }
              && states.contains { $0.client?.outboxEnvelopes == 0 && ($0.client?.acknowledgedTotal ?? 0) > 0 }, states.count)

    section("end to end: PlatformKeyStore (libsodium Ed25519 backend)")
    let backend = SodiumEd25519Backend()
    let keyStore = PlatformKeyStore(backend: backend)
    if let c2 = configuration("keystore", keyStore: keyStore) {
        let t2 = try Tacit(configuration: c2)
        let info2 = try await t2.register(enrolmentToken: env("TACIT_TOKEN2"))
        check("registered with the platform key store", info2.deviceId.count == 32 && info2.deviceId != info.deviceId, info2)
        let m2 = t2.motionCollector(conversion: MotionConversion(clock: clock))
        for s in coreMotionWalking(startUptime: 9_850) { m2.add(s) }
        m2.stop()
        let s2 = try await t2.seal()
        let u2 = try await t2.uploadNow()
        let stats2 = await serverStats()
        check("uploads signed by the key store verify at the gateway",
              u2.stored == UInt64(s2.envelopes) && u2.rejected == 0 && stats2["devices"] == 2 && stats2["rejected"] == 0, "\(u2) \(stats2)")
        check("the same alias reopens the same key",
              (try? PlatformKeyStore(backend: backend).publicKey()) == (try? keyStore.publicKey()))
        await t2.close()
    }
    await expectFailure("a failing key store -> keyStore", { $0 == .keyStore }) {
        guard let c3 = configuration("broken", keyStore: PlatformKeyStore(backend: FailingBackend())) else { throw TacitFailure(action: .internal, message: "config") }
        return try Tacit(configuration: c3)
    }

    section("quickstart")
    if let token = await newEnrolmentToken(), let pk = Data(base64Encoded: env("TACIT_PUBLIC_KEY")) {
        let uptime = ProcessInfo.processInfo.systemUptime
        let answer = await quickstart(url: env("TACIT_URL"), publicKey: pk, keyId: env("TACIT_KEY_ID"), userId: env("TACIT_USER"),
                                      enrolmentToken: token,
                                      dataDirectory: URL(fileURLWithPath: env("TACIT_DATA_DIR")).appendingPathComponent("quickstart"),
                                      nonce: randomNonce(), samples: coreMotionWalking(startUptime: uptime - 40, seconds: 30))
        eprint("  quickstart: \(answer)")
        check("quickstart ran: registered, collected, authenticated", answer == "decision: stepUp", answer)
    } else {
        check("a third enrolment token from the admin API", false)
    }

    section("end to end: revocation")
    let (code, _) = await http("POST", "/v1/devices/\(info.deviceId)/revoke", admin: true)
    check("device revoked by the admin", (200..<300).contains(code), code)
    await expectFailure("revoked device -> reRegister(revoked)", { $0 == .reRegister(.revoked) }) {
        try await tacit.authenticate(nonce: nil, includeFresh: false)
    }
    typeText("tacit-phrase", on: keys, startNs: nowNs - 60 * sec)
    keys.phraseEntry("tacit-phrase")
    _ = try await tacit.seal()
    // The gateway rejects a revoked device's envelopes (reason device_revoked); the core
    // turns that into DeviceRevoked, and the runner stops: the app must register again.
    let revoked = await tacit.runUpload(platform: .iosAppRefresh)
    let stopped: Bool
    switch revoked {
    case .stop(let f): stopped = f.action == .reRegister(.revoked)
    default: stopped = false
    }
    check("runner: revoked device -> stop, re-register", stopped, revoked)

    await tacit.close()
    await watcher.value
    check("close ends the status stream", seen.get().last?.closed == true)
}
