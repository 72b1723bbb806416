// Apple-only adapter: needs the BackgroundTasks framework (iOS / Mac Catalyst SDK). It is
// NOT compiled on the Linux build machines (no Apple SDKs there; `#if
// canImport(BackgroundTasks)` leaves the file empty), so it has no test here: the decision
// (UploadScheduler.decide) and the result mapping (UploadRunner.outcome) it relies on are
// tested on Linux. Check it in Xcode before a release.
#if canImport(BackgroundTasks) && !os(macOS)
import BackgroundTasks
import Foundation
#if canImport(TacitCore)
import TacitCore
#endif

/// Background uploads with a `BGAppRefreshTask` (about 30 s of run time, at moments iOS
/// picks). Setup:
/// 1. add the identifier to `BGTaskSchedulerPermittedIdentifiers` in Info.plist and
///    enable the "Background fetch" background mode;
/// 2. call `register()` before `application(_:didFinishLaunchingWithOptions:)` returns;
/// 3. call `schedule(afterMs: 0)` once (e.g. after registering the device).
/// Each run asks `UploadScheduler` whether to upload, uploads within 25 s, and schedules
/// the next run from the outcome (soon after a cut-short run, with backoff after a
/// failure, not at all when the device must register again).
public final class TacitBackgroundUploads: @unchecked Sendable {
    /// The task identifier (as in Info.plist).
    public let identifier: String
    private let tacit: Tacit

    /// Creates the adapter for `tacit` and the task `identifier`.
    public init(identifier: String, tacit: Tacit) {
        self.identifier = identifier
        self.tacit = tacit
    }

    /// Registers the launch handler. Returns false when iOS refused (the identifier is
    /// not in Info.plist, or registration came after launch).
    @discardableResult
    public func register() -> Bool {
        BGTaskScheduler.shared.register(forTaskWithIdentifier: identifier, using: nil) { [weak self] task in
            guard let self, let refresh = task as? BGAppRefreshTask else {
                task.setTaskCompleted(success: false)
                return
            }
            self.handle(refresh)
        }
    }

    /// Asks iOS to run the task no earlier than `afterMs` from now (replaces a pending request).
    public func schedule(afterMs: UInt64) throws {
        let request = BGAppRefreshTaskRequest(identifier: identifier)
        request.earliestBeginDate = Date(timeIntervalSinceNow: TimeInterval(afterMs) / 1000)
        try BGTaskScheduler.shared.submit(request)
    }

    /// Cancels the pending request (the device must register again, or the user opted out).
    public func cancel() {
        BGTaskScheduler.shared.cancel(taskRequestWithIdentifier: identifier)
    }

    private func handle(_ task: BGAppRefreshTask) {
        // A safety net first: if iOS stops us before the end, a run is still scheduled.
        try? schedule(afterMs: UploadScheduler.idleCheckMs)
        let completion = CompleteOnce(task)
        let work = Task { [tacit] in
            let lowPower = ProcessInfo.processInfo.isLowPowerModeEnabled
            let decision = await tacit.uploadDecision(platform: .iosAppRefresh, batteryLow: lowPower)
            var next: UInt64? = decision?.delayMs ?? UploadScheduler.idleCheckMs
            var success = true
            if decision?.runNow == true {
                let outcome = await tacit.runUpload(platform: .iosAppRefresh)
                next = outcome.nextRunAfterMs
                if case .retryLater = outcome { success = false }
            }
            if let next {
                try? self.schedule(afterMs: next)
            } else {
                self.cancel()
            }
            completion.complete(success: success)
        }
        task.expirationHandler = {
            // The core's upload does not observe Swift cancellation; its 25 s budget ends
            // it. The task is reported as failed at once, as iOS demands.
            work.cancel()
            completion.complete(success: false)
        }
    }
}

/// Calls `setTaskCompleted` exactly once (the expiration handler and the work race).
private final class CompleteOnce: @unchecked Sendable {
    private let task: BGTask
    private let lock = NSLock()
    private var done = false

    init(_ task: BGTask) {
        self.task = task
    }

    func complete(success: Bool) {
        lock.lock()
        let first = !done
        done = true
        lock.unlock()
        if first { task.setTaskCompleted(success: success) }
    }
}
#endif
