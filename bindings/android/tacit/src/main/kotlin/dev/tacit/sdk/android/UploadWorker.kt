// NEEDS THE ANDROID SDK: this adapter uses android.* / androidx.* APIs and is NOT compiled
// on the Linux build machines (no Android SDK or Google Maven there); it is built only by
// bindings/android/build-aar.sh. Keep it thin: the logic it calls lives in the pure
// package dev.tacit.sdk, which bindings/tests/kotlin-platform tests on the JVM.
package dev.tacit.sdk.android

import android.content.Context
import androidx.work.Constraints
import androidx.work.CoroutineWorker
import androidx.work.ExistingWorkPolicy
import androidx.work.NetworkType
import androidx.work.OneTimeWorkRequest
import androidx.work.OneTimeWorkRequestBuilder
import androidx.work.WorkManager
import androidx.work.WorkerParameters
import androidx.work.workDataOf
import dev.tacit.sdk.RequiredNetwork
import dev.tacit.sdk.Tacit
import dev.tacit.sdk.UploadDecision
import dev.tacit.sdk.UploadPlatform
import dev.tacit.sdk.UploadRunResult
import dev.tacit.sdk.UploadScheduler
import java.util.concurrent.TimeUnit

/**
 * Implemented by the app's `Application`: gives the [UploadWorker] the process's one
 * [Tacit] (WorkManager creates workers by reflection, without arguments of ours).
 */
interface TacitProvider {
    /** The process's SDK instance. */
    val tacit: Tacit
}

/**
 * The background upload: one budgeted run ([UploadPlatform.ANDROID_WORKMANAGER], 9 of
 * WorkManager's 10 minutes), then the next run is scheduled from the result: follow-up
 * soon after a cut run, backoff after a transient failure (the attempt count travels in
 * the input data, so our own backoff is used rather than WorkManager's), the normal
 * schedule after a complete one, nothing after [UploadRunResult.Stop] (the app must
 * register again; it sees the failure in `Tacit.state`).
 */
class UploadWorker(appContext: Context, params: WorkerParameters) : CoroutineWorker(appContext, params) {
    override suspend fun doWork(): Result {
        val tacit = (applicationContext as? TacitProvider)?.tacit ?: return Result.failure()
        val network = AndroidConditions.network(applicationContext)
        tacit.setNetworkState(network)
        val attempt = inputData.getInt(TacitUploads.KEY_ATTEMPT, 0)
        val result = tacit.runScheduledUpload(UploadPlatform.ANDROID_WORKMANAGER.budgetMs, attempt)
        val ctx = applicationContext
        when (result) {
            is UploadRunResult.Done -> TacitUploads.schedule(ctx, tacit, followUp = true)
            is UploadRunResult.MoreWork -> TacitUploads.enqueue(ctx, nextDecision(tacit, ctx), result.delayMs, 0, followUp = true)
            is UploadRunResult.RetryLater -> {
                val next = if (result.failure == null) 0 else attempt + 1
                TacitUploads.enqueue(ctx, nextDecision(tacit, ctx), result.delayMs, next, followUp = true)
            }
            is UploadRunResult.Stop -> return Result.failure()
        }
        return Result.success()
    }

    private fun nextDecision(tacit: Tacit, ctx: Context): UploadDecision {
        val n = AndroidConditions.network(ctx)
        return UploadScheduler.decide(
            tacit.uploadInput(UploadPlatform.ANDROID_WORKMANAGER, n.online, n.unmetered, AndroidConditions.batteryLow(ctx)),
        )
    }
}

/** Scheduling of [UploadWorker] with WorkManager. */
object TacitUploads {
    /** The unique work name: one upload chain per app. */
    const val WORK_NAME = "tacit-upload"

    /** Input key: failed runs in a row, for the backoff. */
    const val KEY_ATTEMPT = "tacit.attempt"

    /**
     * Schedules the next upload from [tacit]'s status and the device's conditions (call
     * it at app start and after recording sessions). Keeps an already scheduled run.
     */
    fun schedule(context: Context, tacit: Tacit, followUp: Boolean = false) {
        val n = AndroidConditions.network(context)
        val decision = UploadScheduler.decide(
            tacit.uploadInput(UploadPlatform.ANDROID_WORKMANAGER, n.online, n.unmetered, AndroidConditions.batteryLow(context)),
        )
        enqueue(context, decision, decision.delayMs, 0, followUp)
    }

    /**
     * Enqueues one run after [delayMs] under [decision]'s constraints. From inside a
     * running worker ([followUp]) the request is appended to the chain: replacing it would
     * cancel the worker that is scheduling it.
     */
    fun enqueue(context: Context, decision: UploadDecision, delayMs: Long, attempt: Int, followUp: Boolean) {
        val policy = if (followUp) ExistingWorkPolicy.APPEND_OR_REPLACE else ExistingWorkPolicy.KEEP
        WorkManager.getInstance(context).enqueueUniqueWork(WORK_NAME, policy, request(decision, delayMs, attempt))
    }

    /** The WorkManager constraints of [decision]: network type and battery. */
    fun constraints(decision: UploadDecision): Constraints = Constraints.Builder()
        .setRequiredNetworkType(
            when (decision.requiredNetwork) {
                RequiredNetwork.ANY -> NetworkType.CONNECTED
                RequiredNetwork.UNMETERED -> NetworkType.UNMETERED
            },
        )
        .setRequiresBatteryNotLow(decision.requiresBatteryNotLow)
        .build()

    /** The request for one run. */
    fun request(decision: UploadDecision, delayMs: Long, attempt: Int): OneTimeWorkRequest =
        OneTimeWorkRequestBuilder<UploadWorker>()
            .setConstraints(constraints(decision))
            .setInitialDelay(delayMs.coerceAtLeast(0), TimeUnit.MILLISECONDS)
            .setInputData(workDataOf(KEY_ATTEMPT to attempt))
            .build()

    /** Cancels scheduled uploads (e.g. when the user signs out). */
    fun cancel(context: Context) {
        WorkManager.getInstance(context).cancelUniqueWork(WORK_NAME)
    }
}
