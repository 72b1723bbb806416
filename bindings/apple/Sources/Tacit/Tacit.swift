// The SDK facade apps use (pure Swift + Foundation: compiled and tested on Linux).
// Owns the core's TacitClient; an actor is the SDK's single executor, so the core is
// never called from the main thread or a sensor queue by this layer.
import Foundation
#if canImport(TacitCore)
import TacitCore
#endif

/// What the SDK is doing, published on `Tacit.status`.
public struct TacitState: Sendable, Equatable {
    /// The core's counters (outbox, registration, last upload, background seal errors);
    /// nil until the first read.
    public var client: ClientStatus?
    /// Record batches waiting for the SDK's executor.
    public var queuedBatches: Int = 0
    /// Batches dropped because the queue was full (the oldest go first).
    public var droppedBatches: UInt64 = 0
    /// Readings and key presses in the dropped batches.
    public var droppedItems: UInt64 = 0
    /// Readings the core itself dropped (`RecordReport.dropped`: out of order, unusable).
    public var droppedByCore: UInt64 = 0
    /// Record batches the core refused with an error (see `lastError`).
    public var failedBatches: UInt64 = 0
    /// The most recent failure (kept until the next one).
    public var lastError: TacitFailure?
    /// `close()` was called: records are ignored and the stream has ended.
    public var closed = false

    /// Whether the device is registered.
    public var registered: Bool { client?.registered ?? false }

    /// Creates an empty state.
    public init() {}
}

/// The Tacit SDK: collect behaviour, upload it, and ask whether the enrolled person is
/// still the one using the phone.
///
/// `record*` only enqueue a batch (a bounded queue of `queueCapacity` batches; when it is
/// full the oldest batch is dropped and counted in `TacitState`) and return at once, from
/// any thread; the batches reach the core on this actor. Everything that talks to the
/// backend is `async` and throws `TacitFailure`, which says what the app should do.
public actor Tacit: KeystrokeSink {
    /// What `Tacit` needs to start.
    public struct Configuration: Sendable {
        /// The gateway's base URL (`https://…`).
        public var backendURL: String
        /// The backend's public key for sealing envelopes (from `tacit-backend keygen`).
        public var backendPublicKey: Data
        /// The id of that key (hex).
        public var backendKeyId: String
        /// Where the SDK keeps its outbox and built-in key (e.g. in Application Support).
        /// The SDK creates it and, on Apple platforms, excludes it from backups: a
        /// restored outbox reuses sequence numbers, which the backend takes for a cloned
        /// device.
        public var dataDirectory: URL
        /// The user this phone belongs to (the id the app's backend uses).
        public var userId: String
        /// Upload settings (`defaultUploadSettings()` by default).
        public var upload: UploadSettings
        /// A platform key store (`PlatformKeyStore` over the Secure Enclave); nil uses the
        /// core's built-in Ed25519 key in `dataDirectory`.
        public var keyStore: DeviceKeyStore?
        /// Extra PEM root certificates for the gateway's TLS (private CAs).
        public var tlsRootsPem: String?
        /// The pinned root key of the backend's signed key list.
        public var keyListRoot: Data?
        /// How many record batches may wait for the executor (64 ≈ a minute of motion).
        public var queueCapacity: Int

        /// Creates a configuration; the optional parts default to the core's defaults.
        public init(backendURL: String, backendPublicKey: Data, backendKeyId: String, dataDirectory: URL,
                    userId: String, upload: UploadSettings = defaultUploadSettings(), keyStore: DeviceKeyStore? = nil,
                    tlsRootsPem: String? = nil, keyListRoot: Data? = nil,
                    queueCapacity: Int = Tacit.defaultQueueCapacity) {
            self.backendURL = backendURL
            self.backendPublicKey = backendPublicKey
            self.backendKeyId = backendKeyId
            self.dataDirectory = dataDirectory
            self.userId = userId
            self.upload = upload
            self.keyStore = keyStore
            self.tlsRootsPem = tlsRootsPem
            self.keyListRoot = keyListRoot
            self.queueCapacity = queueCapacity
        }
    }

    /// Creates the data directory and keeps it out of device backups (iCloud, iTunes):
    /// done here, not left to the app, because a restored copy gets the device revoked.
    static func prepare(dataDirectory: URL) throws {
        do {
            try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)
            #if canImport(Darwin)
            var values = URLResourceValues()
            values.isExcludedFromBackup = true
            var url = dataDirectory
            try url.setResourceValues(values)
            #endif
        } catch {
            throw TacitFailure(action: .fixInput, message: "data directory \(dataDirectory.path): \(error)")
        }
    }

    /// The default bound of the record queue, in batches.
    public static let defaultQueueCapacity = 64

    private let client: TacitClientProtocol
    private let uploadSettings: UploadSettings
    private let runner: UploadRunner
    private nonisolated let queue: RecordQueue
    private nonisolated let broadcaster = StateBroadcaster()

    /// Opens the SDK (creates or reopens the client in `dataDirectory`). Throws
    /// `TacitFailure` (`fixInput` for a bad configuration, `keyStore` when the key store
    /// fails).
    public init(configuration c: Configuration) throws {
        try Tacit.prepare(dataDirectory: c.dataDirectory)
        let config = TacitConfig(backendUrl: c.backendURL, backendPublicKey: c.backendPublicKey,
                                 backendKeyId: c.backendKeyId, dataDir: c.dataDirectory.path, userId: c.userId,
                                 upload: c.upload, tlsRootsPem: c.tlsRootsPem, keyListRoot: c.keyListRoot)
        let client: TacitClient
        do {
            client = try TacitClient(config: config, keyStore: c.keyStore)
        } catch {
            throw TacitFailure(error)
        }
        self.init(client: client, upload: c.upload, queueCapacity: c.queueCapacity)
    }

    /// Wraps an existing client (or a test double); `upload` must be the settings it was
    /// created with (the scheduler reads `wifiOnly` and `maxOutboxBytes`).
    public init(client: TacitClientProtocol, upload: UploadSettings, queueCapacity: Int = Tacit.defaultQueueCapacity) {
        self.client = client
        self.uploadSettings = upload
        self.runner = UploadRunner(uploader: ClientUploader(client: client))
        self.queue = RecordQueue(capacity: queueCapacity)
    }

    // MARK: Recording (nonisolated: enqueue and return)

    /// Enqueues motion readings (Unix-epoch ns, m/s² with gravity, Android's sign; use
    /// `motionCollector()` to get them from CoreMotion). Returns at once.
    public nonisolated func recordMotion(_ readings: [MotionReading]) {
        if !readings.isEmpty { enqueue(.motion(readings)) }
    }

    /// Enqueues a block of free-text key presses. Returns at once.
    public nonisolated func recordKeys(_ presses: [KeyPress]) {
        if !presses.isEmpty { enqueue(.keys(presses)) }
    }

    /// Enqueues one typed entry of a fixed phrase; the core hashes the phrase and forgets
    /// it. Returns at once.
    public nonisolated func recordPhraseEntry(phrase: String, events: [KeyPress]) {
        enqueue(.phrase(phrase, events))
    }

    /// Enqueues one camera frame for the face factor. Returns at once.
    public nonisolated func recordFace(_ frame: CameraFrame) {
        enqueue(.face(frame))
    }

    /// A motion collector whose batches go to `recordMotion` (feed it from CoreMotion,
    /// or use `CoreMotionCollector` on iOS).
    public nonisolated func motionCollector(conversion: MotionConversion = MotionConversion()) -> MotionCollector {
        MotionCollector(conversion: conversion) { [weak self] batch in self?.recordMotion(batch) }
    }

    /// A keystroke recorder whose blocks go to `recordKeys` / `recordPhraseEntry`.
    public nonisolated func keystrokeRecorder() -> KeystrokeRecorder {
        KeystrokeRecorder(sink: self)
    }

    private nonisolated func enqueue(_ job: RecordQueue.Job) {
        let r = queue.push(job)
        if let dropped = r.dropped {
            broadcaster.update {
                $0.droppedBatches += 1
                $0.droppedItems += dropped.itemCount
                $0.queuedBatches = r.queued
            }
        }
        if r.scheduleDrain {
            Task { await self.drain() }
        }
    }

    // MARK: State

    /// The states as they change, starting with the current one. Each access creates a
    /// new stream (one per consumer); it ends after `close()`.
    public nonisolated var status: AsyncStream<TacitState> {
        broadcaster.subscribe()
    }

    /// The latest published state (no call into the core).
    public nonisolated var state: TacitState {
        broadcaster.current
    }

    /// This device's id (hex), derived from its public key.
    public nonisolated var deviceId: String {
        client.deviceId()
    }

    /// Hands every queued batch to the core, then reads and publishes the status.
    public func flush() {
        drain()
    }

    /// Reads the core's status, publishes and returns the state.
    @discardableResult
    public func refreshStatus() -> TacitState {
        publishStatus()
        return broadcaster.current
    }

    // MARK: Backend operations

    /// Registers this device with a one-time enrolment token from the backend's admin.
    public func register(enrolmentToken: String) async throws -> DeviceInfo {
        try checkOpen()
        return try await report { try await client.registerDevice(enrolmentToken: enrolmentToken) }
    }

    /// Asks the backend whether the enrolled person is using the phone. Queued records
    /// are handed to the core first and, with `includeFresh`, sealed and sent along.
    /// `nonce`: a one-time value from the app's server, which then verifies the answer's
    /// signed `verdict`.
    public func authenticate(nonce: String?, includeFresh: Bool = true) async throws -> AuthResult {
        try checkOpen()
        drain()
        return try await report { try await client.authenticate(includeFresh: includeFresh, nonce: nonce) }
    }

    /// Uploads waiting envelopes within `budgetMs` (the foreground budget, 60 s, by
    /// default). Records not yet sealed wait for the core's own sealing (or `seal()`).
    public func uploadNow(budgetMs: UInt64 = UploadScheduler.budgetMs(for: .foreground)) async throws -> UploadSummary {
        try checkOpen()
        drain()
        return try await report { try await client.uploadPendingWithin(budgetMs: budgetMs) }
    }

    /// One scheduled upload run with `platform`'s budget, mapped to what the scheduler
    /// should do next (used by the background task adapters). Never throws.
    public func runUpload(platform: UploadPlatform) async -> UploadRunOutcome {
        if broadcaster.current.closed {
            return .stop(TacitFailure(action: .fixInput, message: "Tacit was closed"))
        }
        drain()
        let outcome = await runner.runOnce(budgetMs: UploadScheduler.budgetMs(for: platform))
        switch outcome {
        case .retryLater(_, let f), .stop(let f): broadcaster.update { $0.lastError = f }
        case .done, .moreWork: break
        }
        publishStatus()
        return outcome
    }

    /// The scheduler's decision for `platform` from the current status (nil when the
    /// status cannot be read).
    public func uploadDecision(platform: UploadPlatform, batteryLow: Bool = false) -> UploadDecision? {
        guard let s = try? client.status() else { return nil }
        let now = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
        return UploadScheduler.decide(UploadConditions(
            outboxEnvelopes: s.outboxEnvelopes, outboxBytes: s.outboxBytes,
            maxOutboxBytes: uploadSettings.maxOutboxBytes, lastUploadUnixMs: s.lastUploadUnixMs, nowUnixMs: now,
            online: s.network.online, unmetered: s.network.unmetered, wifiOnly: uploadSettings.wifiOnly,
            batteryLow: batteryLow, platform: platform))
    }

    /// Seals the records handed to the core so far into envelopes now (the core also does
    /// it by itself after `UploadSettings.sealAfterMs` or 1,024 records).
    public func seal() throws -> SealReport {
        try checkOpen()
        drain()
        do {
            let r = try client.seal()
            publishStatus()
            return r
        } catch {
            throw fail(error)
        }
    }

    /// Tells the SDK about connectivity (uploads run only when online, and unmetered with
    /// `wifiOnly`).
    public func setNetwork(online: Bool, unmetered: Bool) throws {
        try checkOpen()
        do {
            try client.setNetworkState(state: NetworkState(online: online, unmetered: unmetered))
            publishStatus()
        } catch {
            throw fail(error)
        }
    }

    /// Hands the queued batches to the core, seals them (pending records live in memory),
    /// ends the status streams and ignores later records. Idempotent.
    public func close() {
        if broadcaster.current.closed { return }
        drain()
        queue.close()
        do {
            _ = try client.seal()
        } catch {
            broadcaster.update { $0.lastError = TacitFailure(error) }
        }
        publishStatus()
        broadcaster.update {
            $0.closed = true
            $0.queuedBatches = 0
        }
        broadcaster.finish()
    }

    // MARK: Internals

    private func checkOpen() throws {
        if broadcaster.current.closed { throw TacitFailure(action: .fixInput, message: "Tacit was closed") }
    }

    private func report<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        do {
            let r = try await body()
            publishStatus()
            return r
        } catch {
            throw fail(error)
        }
    }

    private func fail(_ error: Error) -> TacitFailure {
        let f = TacitFailure(error)
        broadcaster.update { $0.lastError = f }
        publishStatus()
        return f
    }

    /// Runs on the actor, without suspending, so batches reach the core in queue order.
    private func drain() {
        var droppedByCore: UInt64 = 0
        var failures: [TacitFailure] = []
        var processed = 0
        while let job = queue.pop() {
            processed += 1
            do {
                let r: RecordReport
                switch job {
                case .motion(let m): r = try client.recordMotion(samples: m)
                case .keys(let k): r = try client.recordKeys(events: k)
                case .phrase(let p, let k): r = try client.recordPhraseEntry(phrase: p, events: k)
                case .face(let f): r = try client.recordFace(frame: f)
                }
                droppedByCore += r.dropped
            } catch {
                failures.append(TacitFailure(error))
            }
        }
        if processed == 0 && broadcaster.current.client != nil { return }
        broadcaster.update {
            $0.droppedByCore += droppedByCore
            $0.failedBatches += UInt64(failures.count)
            if let last = failures.last { $0.lastError = last }
        }
        publishStatus()
    }

    private func publishStatus() {
        let s = try? client.status()
        let queued = queue.count
        broadcaster.update {
            if let s { $0.client = s }
            $0.queuedBatches = queued
        }
    }
}

/// `TacitClientProtocol` as the runner's `PendingUploader`.
private struct ClientUploader: PendingUploader {
    let client: TacitClientProtocol

    func uploadPendingWithin(budgetMs: UInt64) async throws -> UploadSummary {
        try await client.uploadPendingWithin(budgetMs: budgetMs)
    }
}

/// The bounded FIFO between the nonisolated `record*` calls and the actor.
final class RecordQueue: @unchecked Sendable {
    /// One `record*` call.
    enum Job {
        case motion([MotionReading])
        case keys([KeyPress])
        case phrase(String, [KeyPress])
        case face(CameraFrame)

        /// Readings, presses or frames in the batch (for the drop counters).
        var itemCount: UInt64 {
            switch self {
            case .motion(let m): return UInt64(m.count)
            case .keys(let k): return UInt64(k.count)
            case .phrase(_, let k): return UInt64(k.count)
            case .face: return 1
            }
        }
    }

    /// What a push did.
    struct PushResult {
        /// The batch that was dropped to make room, if any.
        var dropped: Job?
        /// Whether the caller must start a drain (none was scheduled).
        var scheduleDrain: Bool
        /// Batches now queued.
        var queued: Int
    }

    private let capacity: Int
    private let lock = NSLock()
    private var jobs: [Job] = []
    private var head = 0
    private var drainScheduled = false
    private var closed = false

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    var count: Int {
        lock.lock(); defer { lock.unlock() }
        return jobs.count - head
    }

    func push(_ job: Job) -> PushResult {
        lock.lock(); defer { lock.unlock() }
        if closed { return PushResult(dropped: nil, scheduleDrain: false, queued: 0) }
        var dropped: Job?
        if jobs.count - head >= capacity {
            dropped = jobs[head]
            head += 1
        }
        jobs.append(job)
        let schedule = !drainScheduled
        drainScheduled = true
        return PushResult(dropped: dropped, scheduleDrain: schedule, queued: jobs.count - head)
    }

    /// The oldest batch; nil when empty, which also lets the next push schedule a drain.
    func pop() -> Job? {
        lock.lock(); defer { lock.unlock() }
        guard head < jobs.count else {
            jobs.removeAll(keepingCapacity: true)
            head = 0
            drainScheduled = false
            return nil
        }
        let job = jobs[head]
        head += 1
        if head > 64 && head * 2 > jobs.count {
            jobs.removeFirst(head)
            head = 0
        }
        return job
    }

    func close() {
        lock.lock(); defer { lock.unlock() }
        closed = true
        jobs.removeAll()
        head = 0
    }
}

/// The current `TacitState` and the streams that receive it.
final class StateBroadcaster: @unchecked Sendable {
    // Recursive: a stream's onTermination may run while a yield holds the lock.
    private let lock = NSRecursiveLock()
    private var state = TacitState()
    private var continuations: [Int: AsyncStream<TacitState>.Continuation] = [:]
    private var nextId = 0
    private var finished = false

    var current: TacitState {
        lock.lock(); defer { lock.unlock() }
        return state
    }

    func subscribe() -> AsyncStream<TacitState> {
        let (stream, continuation) = AsyncStream<TacitState>.makeStream(bufferingPolicy: .bufferingNewest(32))
        lock.lock(); defer { lock.unlock() }
        continuation.yield(state)
        if finished {
            continuation.finish()
            return stream
        }
        let id = nextId
        nextId += 1
        continuations[id] = continuation
        continuation.onTermination = { [weak self] _ in self?.remove(id) }
        return stream
    }

    /// Changes the state and yields it to every stream when it changed (under the lock,
    /// so every stream sees the states in order).
    func update(_ change: (inout TacitState) -> Void) {
        lock.lock(); defer { lock.unlock() }
        var s = state
        change(&s)
        guard s != state else { return }
        state = s
        for c in continuations.values { c.yield(s) }
    }

    func finish() {
        lock.lock()
        finished = true
        let all = Array(continuations.values)
        continuations = [:]
        lock.unlock()
        for c in all { c.finish() }
    }

    private func remove(_ id: Int) {
        lock.lock(); defer { lock.unlock() }
        continuations[id] = nil
    }
}
