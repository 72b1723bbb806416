// When to upload and what a run's result means (pure Swift: compiled and tested on
// Linux). The BGTaskScheduler adapter (BackgroundUploads.swift) only turns decisions into
// task requests and runs `UploadRunner.runOnce`.
import Foundation
#if canImport(TacitCore)
import TacitCore
#endif

/// Where an upload runs; each gives a different time budget.
public enum UploadPlatform: Sendable, Equatable, CaseIterable {
    /// Android WorkManager (at most 10 minutes per run).
    case androidWorkManager
    /// iOS `BGAppRefreshTask` (about 30 s).
    case iosAppRefresh
    /// iOS `BGProcessingTask` (minutes, usually while charging).
    case iosProcessing
    /// The app is in the foreground.
    case foreground
}

/// The network a scheduled upload needs.
public enum RequiredNetwork: Sendable, Equatable {
    /// Any connection.
    case any
    /// An unmetered one (Wi-Fi), because `UploadSettings.wifiOnly` is set.
    case unmetered
}

/// Everything the upload decision looks at.
public struct UploadConditions: Sendable, Equatable {
    /// Envelopes waiting in the outbox (`ClientStatus.outboxEnvelopes`).
    public var outboxEnvelopes: UInt64
    /// Bytes waiting in the outbox (`ClientStatus.outboxBytes`).
    public var outboxBytes: UInt64
    /// The outbox's limit (`UploadSettings.maxOutboxBytes`): past it the oldest envelopes are evicted.
    public var maxOutboxBytes: UInt64
    /// The last successful upload, Unix ms (`ClientStatus.lastUploadUnixMs`).
    public var lastUploadUnixMs: UInt64?
    /// Now, Unix ms.
    public var nowUnixMs: UInt64
    /// Whether any network is up.
    public var online: Bool
    /// Whether the network is unmetered.
    public var unmetered: Bool
    /// `UploadSettings.wifiOnly`.
    public var wifiOnly: Bool
    /// Whether the battery is low (low-power mode on iOS).
    public var batteryLow: Bool
    /// Where the upload would run.
    public var platform: UploadPlatform

    /// Creates the conditions.
    public init(outboxEnvelopes: UInt64, outboxBytes: UInt64, maxOutboxBytes: UInt64, lastUploadUnixMs: UInt64?,
                nowUnixMs: UInt64, online: Bool, unmetered: Bool, wifiOnly: Bool, batteryLow: Bool,
                platform: UploadPlatform) {
        self.outboxEnvelopes = outboxEnvelopes
        self.outboxBytes = outboxBytes
        self.maxOutboxBytes = maxOutboxBytes
        self.lastUploadUnixMs = lastUploadUnixMs
        self.nowUnixMs = nowUnixMs
        self.online = online
        self.unmetered = unmetered
        self.wifiOnly = wifiOnly
        self.batteryLow = batteryLow
        self.platform = platform
    }
}

/// What to do about uploading.
public struct UploadDecision: Sendable, Equatable {
    /// Why the decision was taken (for logs and tests).
    public enum Reason: Sendable, Equatable {
        /// Envelopes wait and nothing holds them back.
        case due
        /// The outbox is nearly full: upload despite low battery or a recent upload,
        /// before envelopes are evicted.
        case outboxNearlyFull
        /// Nothing to send.
        case outboxEmpty
        /// The required network is not available.
        case waitingForNetwork
        /// The battery is low and the outbox has room.
        case batteryLow
        /// A background upload ran recently.
        case recentlyUploaded
    }

    /// Run now (true) or after `delayMs`.
    public var runNow: Bool
    /// When not now: how long to wait before the next try (the earliest begin date of a
    /// background task). 0 when `runNow`.
    public var delayMs: UInt64
    /// The network constraint to give the OS scheduler.
    public var requiredNetwork: RequiredNetwork
    /// The time budget for the run: pass it to `uploadPendingWithin(budgetMs:)`.
    public var budgetMs: UInt64
    /// Why.
    public var reason: Reason
}

/// The upload scheduling rules, as pure functions.
public enum UploadScheduler {
    /// Background checks with nothing to do, or waiting for a network, recur this often
    /// (15 min: the shortest period WorkManager allows, and about what iOS grants).
    public static let idleCheckMs: UInt64 = 15 * 60_000
    /// Background uploads are spaced at least this much (5 min) unless the outbox fills up.
    public static let minimumSpacingMs: UInt64 = 5 * 60_000
    /// With a low battery, uploads wait this long (1 h) unless the outbox fills up.
    public static let batteryLowDelayMs: UInt64 = 60 * 60_000
    /// A run that ran out of time or left envelopes is rescheduled after this (1 min).
    public static let rescheduleSoonMs: UInt64 = 60_000

    /// The time budget of one run: WorkManager allows 10 min (9 min used), a
    /// `BGAppRefreshTask` about 30 s (25 s), a `BGProcessingTask` minutes (5 min),
    /// the foreground 60 s. The margin lets the run report before the OS stops it.
    public static func budgetMs(for platform: UploadPlatform) -> UInt64 {
        switch platform {
        case .androidWorkManager: return 9 * 60_000
        case .iosAppRefresh: return 25_000
        case .iosProcessing: return 5 * 60_000
        case .foreground: return 60_000
        }
    }

    /// Whether the outbox is at least 80 % full (envelopes would soon be evicted).
    public static func nearlyFull(_ c: UploadConditions) -> Bool {
        c.maxOutboxBytes > 0 && c.outboxBytes >= c.maxOutboxBytes / 5 * 4
    }

    /// Decides whether to upload now: not when the outbox is empty or the required
    /// network is missing; not on a low battery or right after a background upload
    /// unless the outbox is nearly full; otherwise now.
    public static func decide(_ c: UploadConditions) -> UploadDecision {
        let network: RequiredNetwork = c.wifiOnly ? .unmetered : .any
        let budget = budgetMs(for: c.platform)
        func later(_ ms: UInt64, _ reason: UploadDecision.Reason) -> UploadDecision {
            UploadDecision(runNow: false, delayMs: ms, requiredNetwork: network, budgetMs: budget, reason: reason)
        }
        if c.outboxEnvelopes == 0 { return later(idleCheckMs, .outboxEmpty) }
        if !c.online || (c.wifiOnly && !c.unmetered) { return later(idleCheckMs, .waitingForNetwork) }
        let full = nearlyFull(c)
        if c.batteryLow && !full { return later(batteryLowDelayMs, .batteryLow) }
        if c.platform != .foreground, !full, let last = c.lastUploadUnixMs, c.nowUnixMs >= last,
           c.nowUnixMs - last < minimumSpacingMs {
            return later(minimumSpacingMs - (c.nowUnixMs - last), .recentlyUploaded)
        }
        return UploadDecision(runNow: true, delayMs: 0, requiredNetwork: network, budgetMs: budget,
                              reason: full ? .outboxNearlyFull : .due)
    }
}

/// The part of the client an upload run needs (`TacitClient` has it; tests use fakes).
public protocol PendingUploader: Sendable {
    /// `TacitClient.uploadPendingWithin(budgetMs:)`.
    func uploadPendingWithin(budgetMs: UInt64) async throws -> UploadSummary
}

extension TacitClient: PendingUploader {}

/// What one upload run means for the scheduler.
public enum UploadRunOutcome: Sendable, Equatable {
    /// Everything was delivered; schedule the next periodic check.
    case done(UploadSummary)
    /// Progress, but envelopes remain or the budget ran out: run again after
    /// `rescheduleAfterMs` (soon).
    case moreWork(UploadSummary, rescheduleAfterMs: UInt64)
    /// Nothing could be delivered now (offline, network, rate limit, clock, storage, a
    /// locked key store): try again after `afterMs` (an exponential backoff).
    case retryLater(afterMs: UInt64, failure: TacitFailure)
    /// Retrying cannot help: the device needs registering again, or the configuration is
    /// wrong. Cancel the scheduled uploads until the app fixes it.
    case stop(TacitFailure)

    /// The delay before the next run, nil for `stop`.
    public var nextRunAfterMs: UInt64? {
        switch self {
        case .done: return UploadScheduler.idleCheckMs
        case .moreWork(_, let ms): return ms
        case .retryLater(let ms, _): return ms
        case .stop: return nil
        }
    }
}

/// Runs uploads and maps their results to `UploadRunOutcome`, keeping the backoff
/// between failed runs.
public actor UploadRunner {
    /// The first retry waits this long (30 s); each further failure doubles it.
    public static let backoffBaseMs: UInt64 = 30_000
    /// The longest backoff (1 h).
    public static let backoffMaxMs: UInt64 = 60 * 60_000

    private let uploader: PendingUploader
    private var consecutiveFailures = 0

    /// Creates a runner over `uploader` (a `TacitClient`).
    public init(uploader: PendingUploader) {
        self.uploader = uploader
    }

    /// One upload within `budgetMs`, mapped to an outcome. Never throws: failures become
    /// `retryLater` or `stop`.
    public func runOnce(budgetMs: UInt64) async -> UploadRunOutcome {
        let result: Result<UploadSummary, Error>
        do {
            result = .success(try await uploader.uploadPendingWithin(budgetMs: budgetMs))
        } catch {
            result = .failure(error)
        }
        let outcome = Self.outcome(of: result, consecutiveFailures: consecutiveFailures)
        switch outcome {
        case .done, .moreWork: consecutiveFailures = 0
        case .retryLater: consecutiveFailures += 1
        case .stop: break
        }
        return outcome
    }

    /// The backoff after `failures` earlier consecutive failures: 30 s, 1 min, 2 min, …,
    /// at most 1 h, and never shorter than a delay the failure itself asks for.
    public static func backoffMs(consecutiveFailures failures: Int, atLeast known: UInt64? = nil) -> UInt64 {
        let exponent = min(max(failures, 0), 20)
        let ms = min(backoffBaseMs << UInt64(exponent), backoffMaxMs)
        return max(ms, known ?? 0)
    }

    /// The pure mapping of a run's result: a complete upload is `done`; one cut by its
    /// budget or leaving envelopes is `moreWork` if it delivered anything, else
    /// `retryLater` (the network failed or was missing); errors that need re-registration
    /// or a fixed configuration `stop`, the others `retryLater` with backoff.
    public static func outcome(of result: Result<UploadSummary, Error>, consecutiveFailures: Int) -> UploadRunOutcome {
        switch result {
        case .success(let s):
            if s.remaining == 0 && !s.outOfTime { return .done(s) }
            let delivered = s.stored + s.duplicate + s.rejected
            if let reason = s.skippedReason, s.sent == 0 {
                let f = TacitFailure(action: .retryLater(afterMs: nil), message: "upload skipped: \(reason)")
                return .retryLater(afterMs: backoffMs(consecutiveFailures: consecutiveFailures), failure: f)
            }
            // A batch cut off by the budget counts as failed but is no error: go on soon.
            if !s.outOfTime && (s.error != nil || (delivered == 0 && s.failed > 0)) {
                let why = s.error ?? "\(s.failed) envelopes not delivered"
                // The backend's Retry-After when it throttled the upload, never less than
                // our own backoff.
                let f = TacitFailure(action: .retryLater(afterMs: s.retryAfterMs), message: why)
                return .retryLater(afterMs: backoffMs(consecutiveFailures: consecutiveFailures, atLeast: s.retryAfterMs),
                                   failure: f)
            }
            return .moreWork(s, rescheduleAfterMs: UploadScheduler.rescheduleSoonMs)
        case .failure(let error):
            let f = TacitFailure(error)
            switch f.action {
            case .reRegister, .fixInput:
                return .stop(f)
            case .retryLater(let known):
                return .retryLater(afterMs: backoffMs(consecutiveFailures: consecutiveFailures, atLeast: known), failure: f)
            case .keyStore, .internal:
                return .retryLater(afterMs: backoffMs(consecutiveFailures: consecutiveFailures), failure: f)
            }
        }
    }
}
