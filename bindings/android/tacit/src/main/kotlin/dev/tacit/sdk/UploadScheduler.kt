// When to upload, for how long, and what a run's result means for the next one. Pure
// functions: the Android adapter (dev.tacit.sdk.android.UploadWorker) turns decisions
// into WorkManager requests.
package dev.tacit.sdk

import kotlin.coroutines.cancellation.CancellationException
import uniffi.tacit.TacitClientInterface
import uniffi.tacit.UploadSummary

/**
 * Where an upload runs; each platform stops background work after its own time, so
 * each gets a [budgetMs] that leaves a margin for the SDK to stop cleanly.
 */
enum class UploadPlatform(
    /** The time budget of one run (passed to `uploadPendingWithin`). */
    val budgetMs: Long,
) {
    /** Android WorkManager: at most 10 minutes per run; 9 are used. */
    ANDROID_WORKMANAGER(9 * 60_000L),

    /** iOS `BGAppRefreshTask`: about 30 s; 25 are used. */
    IOS_APP_REFRESH(25_000L),

    /** iOS `BGProcessingTask`: minutes; 5 are used. */
    IOS_PROCESSING(5 * 60_000L),

    /** The app is in the foreground (an explicit "upload now"): 60 s. */
    FOREGROUND(60_000L),
}

/** The network an upload needs. */
enum class RequiredNetwork {
    /** Any connected network (WorkManager `NetworkType.CONNECTED`). */
    ANY,

    /** An unmetered network only (`NetworkType.UNMETERED`), for `wifiOnly`. */
    UNMETERED,
}

/** What the scheduler knows when it decides. */
data class UploadInput(
    /** Envelopes waiting in the outbox (`ClientStatus.outboxEnvelopes`). */
    val outboxEnvelopes: Long,
    /** Bytes waiting in the outbox (`ClientStatus.outboxBytes`). */
    val outboxBytes: Long,
    /** Last successful upload, Unix ms (`ClientStatus.lastUploadUnixMs`); null if never. */
    val lastUploadUnixMs: Long?,
    /** Now, Unix ms. */
    val nowUnixMs: Long,
    /** Whether any network is connected. */
    val online: Boolean,
    /** Whether the network is unmetered. */
    val unmetered: Boolean,
    /** The app's `UploadSettings.wifiOnly`. */
    val wifiOnly: Boolean,
    /** Whether the battery is low (Android `BATTERY_LOW`, iOS Low Power Mode). */
    val batteryLow: Boolean,
    /** Where the run will happen. */
    val platform: UploadPlatform,
)

/** Tunables of the scheduler; the defaults suit a background SDK. */
data class UploadPolicy(
    /** Uploads are spaced at least this far apart unless the outbox grew large (15 min). */
    val minIntervalMs: Long = 15 * 60_000L,
    /** With nothing to send, look again after this long (1 h). */
    val idleCheckMs: Long = 60 * 60_000L,
    /** This many envelopes are worth sending at once, interval or not. */
    val urgentEnvelopes: Long = 64,
    /** This many bytes are worth sending at once, even on a low battery (4 MiB). */
    val urgentBytes: Long = 4L * 1024 * 1024,
    /** After a run cut by its budget, or one that left envelopes, run again this soon (30 s). */
    val followUpDelayMs: Long = 30_000L,
    /** First retry delay after a transient failure; doubled per attempt (30 s). */
    val backoffBaseMs: Long = 30_000L,
    /** The longest retry delay (1 h). */
    val backoffMaxMs: Long = 60 * 60_000L,
)

/**
 * The scheduler's answer: whether to run now and, if not, in how long; the network and
 * battery conditions the run waits for; and the run's time budget.
 */
data class UploadDecision(
    /** Run now: the conditions hold and nothing asks to wait. */
    val runNow: Boolean,
    /** Wait at least this long (0: as soon as the conditions hold). */
    val delayMs: Long,
    /** The network the run needs. */
    val requiredNetwork: RequiredNetwork,
    /** Wait for the battery not to be low (WorkManager `setRequiresBatteryNotLow`). */
    val requiresBatteryNotLow: Boolean,
    /** The run's budget for `uploadPendingWithin`. */
    val budgetMs: Long,
    /** Why, in words (for logs). */
    val reason: String,
)

/** The decision function. */
object UploadScheduler {
    /**
     * Decides the next upload from [input]:
     * - nothing waiting: no run, look again after [UploadPolicy.idleCheckMs];
     * - the needed network (unmetered with `wifiOnly`) is missing: wait for it;
     * - a low battery: wait for it to recover, unless the outbox holds
     *   [UploadPolicy.urgentBytes] (which would otherwise be evicted);
     * - the last upload was less than [UploadPolicy.minIntervalMs] ago: wait out the
     *   interval, unless the outbox is urgent or the app is in the foreground;
     * - otherwise run now, with the platform's budget.
     */
    fun decide(input: UploadInput, policy: UploadPolicy = UploadPolicy()): UploadDecision {
        val network = if (input.wifiOnly) RequiredNetwork.UNMETERED else RequiredNetwork.ANY
        val budget = input.platform.budgetMs
        fun wait(delayMs: Long, batteryNotLow: Boolean, reason: String) =
            UploadDecision(false, delayMs.coerceAtLeast(0), network, batteryNotLow, budget, reason)

        if (input.outboxEnvelopes <= 0) return wait(policy.idleCheckMs, false, "outbox empty")
        val urgentBytes = input.outboxBytes >= policy.urgentBytes
        val urgent = urgentBytes || input.outboxEnvelopes >= policy.urgentEnvelopes
        val foreground = input.platform == UploadPlatform.FOREGROUND
        val lowBatteryWait = input.batteryLow && !urgentBytes && !foreground
        if (!input.online) return wait(0, lowBatteryWait, "offline: waiting for a network")
        if (input.wifiOnly && !input.unmetered) return wait(0, lowBatteryWait, "wifiOnly: waiting for an unmetered network")
        if (lowBatteryWait) return wait(0, true, "battery low: waiting for it to recover")
        val last = input.lastUploadUnixMs
        if (!urgent && !foreground && last != null) {
            val since = input.nowUnixMs - last
            if (since in 0 until policy.minIntervalMs) {
                return wait(policy.minIntervalMs - since, false, "uploaded ${since / 1000} s ago")
            }
        }
        return UploadDecision(true, 0, network, false, budget, if (urgent) "outbox large" else "envelopes waiting")
    }

    /** The retry delay after [attempt] failed runs in a row (0-based): exponential, capped. */
    fun backoffMs(attempt: Int, policy: UploadPolicy = UploadPolicy()): Long {
        val shift = attempt.coerceIn(0, 30)
        val d = policy.backoffBaseMs.toDouble() * (1L shl shift).toDouble()
        return if (d >= policy.backoffMaxMs) policy.backoffMaxMs else d.toLong()
    }
}

/** What one upload run means for the next. */
sealed class UploadRunResult {
    /**
     * Everything was sent: follow the normal schedule.
     * @property summary what the run did.
     */
    data class Done(val summary: UploadSummary) : UploadRunResult()

    /**
     * The run was cut by its budget or left envelopes: run again after [delayMs].
     * @property summary what the run did.
     * @property delayMs when to run again (the policy's follow-up delay).
     */
    data class MoreWork(val summary: UploadSummary, val delayMs: Long) : UploadRunResult()

    /**
     * A transient failure (network, rate limit, key store locked, offline, an unexpected
     * backend refusal): retry after [delayMs].
     * @property delayMs how long to wait (0: as soon as the network constraint holds).
     * @property failure the failure; null when the core skipped the upload ([skippedReason]).
     * @property skippedReason why the core sent nothing (offline, metered network).
     */
    data class RetryLater(val delayMs: Long, val failure: TacitFailure?, val skippedReason: String? = null) : UploadRunResult()

    /**
     * Uploading cannot succeed until the app acts: the device must be registered again
     * ([TacitFailure.Reregister]) or the configuration fixed. Stop scheduling.
     * @property failure what the app must act on.
     */
    data class Stop(val failure: TacitFailure) : UploadRunResult()
}

/**
 * Runs one budgeted upload and maps its outcome to an [UploadRunResult]. [upload] is
 * `TacitClient.uploadPendingWithin` (see [forClient]); injectable for tests.
 */
class UploadRunner(
    private val policy: UploadPolicy = UploadPolicy(),
    private val upload: suspend (budgetMs: Long) -> UploadSummary,
) {
    /**
     * Uploads for at most [budgetMs]. [attempt] counts the failed runs before this one
     * (WorkManager's `runAttemptCount`) for the backoff.
     */
    suspend fun runOnce(budgetMs: Long, attempt: Int = 0): UploadRunResult {
        val summary = try {
            upload(budgetMs)
        } catch (e: CancellationException) {
            throw e
        } catch (e: Exception) {
            return mapFailure(TacitFailure.from(e), attempt)
        }
        return mapSummary(summary, attempt)
    }

    /** The result for a run that returned [summary]. */
    fun mapSummary(summary: UploadSummary, attempt: Int = 0): UploadRunResult {
        val skipped = summary.skippedReason
        return when {
            // Offline or metered: the platform's network constraint decides when to retry.
            skipped != null && summary.sent == 0UL -> UploadRunResult.RetryLater(0, null, skipped)
            // The budget ran out (a batch cut off mid-request counts as failed but is not
            // an error): go on soon.
            summary.outOfTime -> UploadRunResult.MoreWork(summary, policy.followUpDelayMs)
            // Some envelopes were not delivered (the network or the backend failed after
            // the core's retries): back off, growing with each failed run, and say why.
            summary.error != null || summary.failed > 0UL -> {
                // The backend's Retry-After, when it throttled the upload, and never less
                // than our own backoff.
                val asked = summary.retryAfterMs?.let { if (it > Long.MAX_VALUE.toULong()) Long.MAX_VALUE else it.toLong() }
                UploadRunResult.RetryLater(
                    maxOf(UploadScheduler.backoffMs(attempt, policy), asked ?: 0L),
                    TacitFailure.RetryLater(
                        summary.error ?: "${summary.failed} envelopes not delivered",
                        if (asked != null) RetryReason.RATE_LIMITED else RetryReason.NETWORK,
                        asked,
                    ),
                )
            }
            summary.remaining > 0UL -> UploadRunResult.MoreWork(summary, policy.followUpDelayMs)
            else -> UploadRunResult.Done(summary)
        }
    }

    /** The result for a run that failed with [failure]. */
    fun mapFailure(failure: TacitFailure, attempt: Int = 0): UploadRunResult = when (failure) {
        is TacitFailure.RetryLater ->
            UploadRunResult.RetryLater(failure.retryAfterMs ?: UploadScheduler.backoffMs(attempt, policy), failure)
        // A locked key store recovers when the user unlocks the phone; an unexpected
        // refusal or bug may go away with a backend or app update, and the envelopes are
        // safe in the outbox meanwhile: both retry with backoff rather than stop.
        is TacitFailure.KeyStore, is TacitFailure.Internal ->
            UploadRunResult.RetryLater(UploadScheduler.backoffMs(attempt, policy), failure)
        is TacitFailure.Reregister, is TacitFailure.FixInput -> UploadRunResult.Stop(failure)
    }

    /** Constructors. */
    companion object {
        /** A runner over a core client's `uploadPendingWithin`. */
        fun forClient(client: TacitClientInterface, policy: UploadPolicy = UploadPolicy()): UploadRunner =
            UploadRunner(policy) { budget -> client.uploadPendingWithin(budget.coerceAtLeast(1).toULong()) }
    }
}
