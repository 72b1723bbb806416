// The SDK facade: one object the app keeps, non-blocking record calls, a status stream,
// and suspend functions for the calls that talk to the backend.
package dev.tacit.sdk

import java.util.ArrayDeque
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import java.util.concurrent.ThreadFactory
import kotlin.coroutines.cancellation.CancellationException
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.cancel
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import uniffi.tacit.AuthResult
import uniffi.tacit.ClientStatus
import uniffi.tacit.DeviceInfo
import uniffi.tacit.DeviceKeyStore
import uniffi.tacit.KeyPress
import uniffi.tacit.MotionReading
import uniffi.tacit.NetworkState
import uniffi.tacit.RecordReport
import uniffi.tacit.SealReport
import uniffi.tacit.TacitClient
import uniffi.tacit.TacitClientInterface
import uniffi.tacit.TacitConfig
import uniffi.tacit.UploadSummary

/** Options of the facade. */
data class TacitOptions(
    /**
     * Record batches waiting for the SDK thread (64 = about a minute of motion). When
     * full, the oldest batch is dropped and counted in [TacitState.droppedBatches]: a
     * stalled SDK thread must not grow the app's memory.
     */
    val queueCapacity: Int = 64,
)

/** Totals of what the core accepted from the record calls (counts, no content). */
data class RecordTotals(
    /** Motion readings the core used. */
    val motionAccepted: Long = 0,
    /** Motion readings the core dropped (NaN, duplicates, ...). */
    val motionDropped: Long = 0,
    /** Key presses the core used (free text and phrases). */
    val keysAccepted: Long = 0,
    /** Key presses the core dropped. */
    val keysDropped: Long = 0,
    /** Phrase entries recorded. */
    val phraseEntries: Long = 0,
    /** Feature records the core produced. */
    val featureRecords: Long = 0,
)

/** What the app can show or log about the SDK; see [Tacit.state]. */
data class TacitState(
    /** The core's status after the last operation (null until the first refresh). */
    val status: ClientStatus? = null,
    /** Record batches waiting for the SDK thread. */
    val queued: Int = 0,
    /** Record batches dropped: the queue was full (oldest first) or the SDK was closed. */
    val droppedBatches: Long = 0,
    /** Record calls the core refused (see [lastFailure]). */
    val recordFailures: Long = 0,
    /** What the core accepted. */
    val recorded: RecordTotals = RecordTotals(),
    /** The most recent failure of any call, null if none yet. */
    val lastFailure: TacitFailure? = null,
    /** Whether [Tacit.close] ran. */
    val closed: Boolean = false,
)

/**
 * The Tacit SDK: owns the core client and one SDK thread that every core call runs on.
 *
 * - `record*` calls only enqueue and return at once, on any thread (sensor, UI): the
 *   queue is bounded ([TacitOptions.queueCapacity]); when it is full the oldest batch is
 *   dropped and counted. The core is never called on the caller's thread.
 * - [state] streams [TacitState]: the core's status, queue and drop counters, the last
 *   failure.
 * - [register], [authenticate], [uploadNow], [seal] and [close] suspend; each first
 *   hands the queued batches to the core, so they see everything recorded before.
 *   Their failures are [TacitFailure]s, by the action the app should take.
 *
 * Create it once per process with [configure] (or over any [TacitClientInterface], e.g.
 * a fake in tests). Sensors: [motionCollector]; keypads: [keystrokeRecorder].
 *
 * @param client the core client every call goes to (closed by [close] when it is
 *   [AutoCloseable], as the generated `TacitClient` is).
 */
class Tacit(
    private val client: TacitClientInterface,
    /** Facade options. */
    val options: TacitOptions = TacitOptions(),
    /** The app's `UploadSettings.wifiOnly`, for [uploadInput]. */
    private val wifiOnly: Boolean = false,
) {
    init {
        require(options.queueCapacity > 0) { "queueCapacity must be positive, got ${options.queueCapacity}" }
    }

    private sealed class Work {
        class Motion(val readings: List<MotionReading>) : Work()
        class Keys(val presses: List<KeyPress>) : Work()
        class Phrase(val phrase: String, val presses: List<KeyPress>) : Work()
    }

    private val executor: ExecutorService = Executors.newSingleThreadExecutor(
        ThreadFactory { r -> Thread(r, "tacit-sdk").apply { isDaemon = true } },
    )

    /** The SDK thread, as a dispatcher: every core call runs on it. */
    val dispatcher: CoroutineDispatcher = executor.asCoroutineDispatcher()

    private val scope = CoroutineScope(SupervisorJob() + dispatcher)
    private val lock = Any()
    private val queue = ArrayDeque<Work>()
    private var pendingNetwork: NetworkState? = null
    private var closed = false

    // A conflated channel only wakes the consumer: record calls never block on it.
    private val wake = Channel<Unit>(Channel.CONFLATED)
    private val mutableState = MutableStateFlow(TacitState())

    /** The SDK's state; updated after each burst of records and each operation. */
    val state: StateFlow<TacitState> = mutableState.asStateFlow()

    init {
        scope.launch {
            for (signal in wake) drainQueue()
        }
    }

    /** Queues motion readings (Unix-epoch ns) for the core; returns at once. */
    fun recordMotion(readings: List<MotionReading>) {
        if (readings.isNotEmpty()) enqueue(Work.Motion(readings))
    }

    /** Queues a free-text block of key presses; returns at once. */
    fun recordKeys(presses: List<KeyPress>) {
        if (presses.isNotEmpty()) enqueue(Work.Keys(presses))
    }

    /**
     * Queues one typed entry of a fixed phrase with its presses; returns at once. The
     * phrase stays in memory only until the SDK thread hands it to the core, which hashes it.
     */
    fun recordPhraseEntry(phrase: String, presses: List<KeyPress>) {
        enqueue(Work.Phrase(phrase, presses))
    }

    /**
     * Tells the core about connectivity (applied on the SDK thread before the next
     * batch; never dropped, the newest state wins).
     */
    fun setNetworkState(state: NetworkState) {
        synchronized(lock) {
            if (closed) return
            pendingNetwork = state
        }
        wake.trySend(Unit)
    }

    /**
     * A [MotionCollector] feeding this SDK; [clock] must be the clock of the sensor
     * events' timestamps (Android: `ElapsedRealtimeClock`).
     */
    fun motionCollector(clock: SensorClock, batchSize: Int = MotionCollector.DEFAULT_BATCH_SIZE): MotionCollector =
        MotionCollector(MotionConversion(clock), batchSize) { recordMotion(it) }

    /** A [KeystrokeRecorder] feeding this SDK's [recordKeys] and [recordPhraseEntry]. */
    fun keystrokeRecorder(blockSize: Int = KeystrokeRecorder.DEFAULT_BLOCK_SIZE): KeystrokeRecorder =
        KeystrokeRecorder(blockSize, { recordKeys(it) }, { phrase, keys -> recordPhraseEntry(phrase, keys) })

    /** Registers this device with a one-time enrolment token from the backend's admin. */
    suspend fun register(enrolmentToken: String): DeviceInfo = operation { client.registerDevice(enrolmentToken) }

    /**
     * Asks the backend whether the enrolled person is using the phone. [nonce] is a
     * one-time value from the app's server (16..128 characters of `[A-Za-z0-9._~+/=-]`);
     * the answer's `verdict` is a token the server verifies. With [includeFresh] the
     * newest records are sealed and travel with the request.
     */
    suspend fun authenticate(nonce: String?, includeFresh: Boolean = true): AuthResult =
        operation { client.authenticate(includeFresh, nonce) }

    /** Uploads waiting envelopes, returning within [budgetMs] (default: a foreground minute). */
    suspend fun uploadNow(budgetMs: Long = UploadPlatform.FOREGROUND.budgetMs): UploadSummary = operation {
        if (budgetMs <= 0) throw TacitFailure.FixInput("upload budget must be positive, got $budgetMs ms")
        client.uploadPendingWithin(budgetMs.toULong())
    }

    /**
     * One scheduled upload run for a background task (WorkManager's worker): the result
     * says whether to reschedule, retry or stop. Failures are in the result, not thrown.
     */
    suspend fun runScheduledUpload(budgetMs: Long, attempt: Int = 0, policy: UploadPolicy = UploadPolicy()): UploadRunResult {
        val result = withContext(dispatcher) {
            drainQueue()
            UploadRunner(policy) { budget -> client.uploadPendingWithin(budget.coerceAtLeast(1).toULong()) }
                .runOnce(budgetMs, attempt)
        }
        when (result) {
            is UploadRunResult.RetryLater -> result.failure?.let(::noteFailure)
            is UploadRunResult.Stop -> noteFailure(result.failure)
            else -> {}
        }
        refresh()
        return result
    }

    /**
     * The scheduler's input from the last known status (refresh with [refresh] first for
     * the newest). [online]/[unmetered] come from the platform's connectivity.
     */
    fun uploadInput(
        platform: UploadPlatform,
        online: Boolean,
        unmetered: Boolean,
        batteryLow: Boolean,
        nowUnixMs: Long = System.currentTimeMillis(),
    ): UploadInput {
        val st = state.value.status
        return UploadInput(
            outboxEnvelopes = st?.outboxEnvelopes?.toLongClamped() ?: 0,
            outboxBytes = st?.outboxBytes?.toLongClamped() ?: 0,
            lastUploadUnixMs = st?.lastUploadUnixMs?.toLongClamped(),
            nowUnixMs = nowUnixMs,
            online = online,
            unmetered = unmetered,
            wifiOnly = wifiOnly,
            batteryLow = batteryLow,
            platform = platform,
        )
    }

    /** Seals pending feature records into envelopes in the outbox now. */
    suspend fun seal(): SealReport = operation { client.seal() }

    /** Hands queued batches to the core and refreshes [state] (e.g. before showing it). */
    suspend fun refresh() {
        withContext(dispatcher) {
            drainQueue()
            refreshStatus()
        }
    }

    /**
     * Hands the queued batches to the core, seals what is pending (so it waits in the
     * crash-safe outbox), releases the core client and stops the SDK thread. Later
     * record calls are dropped and counted; operations fail with [TacitFailure.Internal].
     */
    suspend fun close() {
        synchronized(lock) {
            if (closed) return
        }
        withContext(dispatcher) {
            drainQueue()
            synchronized(lock) { closed = true }
            try {
                client.seal()
            } catch (e: CancellationException) {
                throw e
            } catch (e: Exception) {
                noteFailure(TacitFailure.from(e))
            }
            (client as? AutoCloseable)?.close()
        }
        mutableState.update { it.copy(closed = true, queued = 0) }
        wake.close()
        scope.cancel()
        executor.shutdown()
    }

    private fun enqueue(work: Work) {
        var dropped = 0
        val size: Int
        synchronized(lock) {
            if (closed) {
                dropped = 1
            } else {
                if (queue.size >= options.queueCapacity) {
                    queue.pollFirst()
                    dropped = 1
                }
                queue.addLast(work)
            }
            size = queue.size
        }
        if (dropped > 0 || size == 1) {
            mutableState.update { it.copy(queued = size, droppedBatches = it.droppedBatches + dropped) }
        }
        wake.trySend(Unit)
    }

    // Runs on the SDK thread only.
    private fun drainQueue() {
        var ran = false
        while (true) {
            val (network, work) = synchronized(lock) {
                val n = pendingNetwork
                pendingNetwork = null
                n to queue.pollFirst()
            }
            if (network != null) {
                try {
                    client.setNetworkState(network)
                } catch (e: Exception) {
                    noteFailure(TacitFailure.from(e))
                }
                ran = true
            }
            if (work == null) break
            ran = true
            runWork(work)
        }
        if (ran) refreshStatus()
    }

    private fun runWork(work: Work) {
        try {
            when (work) {
                is Work.Motion -> {
                    val r = client.recordMotion(work.readings)
                    addTotals(r) { t -> t.copy(motionAccepted = t.motionAccepted + r.accepted.toLongClamped(), motionDropped = t.motionDropped + r.dropped.toLongClamped()) }
                }
                is Work.Keys -> {
                    val r = client.recordKeys(work.presses)
                    addTotals(r) { t -> t.copy(keysAccepted = t.keysAccepted + r.accepted.toLongClamped(), keysDropped = t.keysDropped + r.dropped.toLongClamped()) }
                }
                is Work.Phrase -> {
                    val r = client.recordPhraseEntry(work.phrase, work.presses)
                    addTotals(r) { t ->
                        t.copy(
                            keysAccepted = t.keysAccepted + r.accepted.toLongClamped(),
                            keysDropped = t.keysDropped + r.dropped.toLongClamped(),
                            phraseEntries = t.phraseEntries + 1,
                        )
                    }
                }
            }
        } catch (e: Exception) {
            val failure = TacitFailure.from(e)
            mutableState.update { it.copy(recordFailures = it.recordFailures + 1, lastFailure = failure) }
        }
    }

    private inline fun addTotals(r: RecordReport, crossinline f: (RecordTotals) -> RecordTotals) {
        val records = r.featureRecords.toLongClamped()
        mutableState.update { s -> s.copy(recorded = f(s.recorded).let { it.copy(featureRecords = it.featureRecords + records) }) }
    }

    private fun refreshStatus() {
        val size = synchronized(lock) { queue.size }
        val status = try {
            client.status()
        } catch (e: Exception) {
            noteFailure(TacitFailure.from(e))
            null
        }
        mutableState.update { it.copy(status = status ?: it.status, queued = size) }
    }

    private fun noteFailure(failure: TacitFailure) {
        mutableState.update { it.copy(lastFailure = failure) }
    }

    private suspend fun <T> operation(block: suspend () -> T): T {
        if (synchronized(lock) { closed }) throw TacitFailure.Internal("the SDK is closed")
        return withContext(dispatcher) {
            drainQueue()
            try {
                block()
            } catch (e: CancellationException) {
                throw e
            } catch (e: Exception) {
                val failure = TacitFailure.from(e)
                noteFailure(failure)
                throw failure
            } finally {
                refreshStatus()
            }
        }
    }

    /** Opening the SDK. */
    companion object {
        /**
         * Opens the core client for [config] (a private data directory, the pinned
         * backend key) with [keyStore] (null: the core's own Ed25519 key file; on Android
         * pass `PlatformKeyStore(AndroidKeystoreBackend())`). On Android put the data
         * directory under `context.noBackupFilesDir`: Auto Backup would otherwise restore
         * the outbox onto a new phone, whose reused sequence numbers the backend takes
         * for a cloned device (it revokes it). Reads the data directory:
         * call it off the main thread, once per process. An unusable configuration is
         * [TacitFailure.FixInput].
         */
        fun configure(config: TacitConfig, keyStore: DeviceKeyStore? = null, options: TacitOptions = TacitOptions()): Tacit {
            val client = mapFailures { TacitClient(config, keyStore) }
            return Tacit(client, options, config.upload.wifiOnly)
        }
    }
}

private fun ULong.toLongClamped(): Long = if (this > Long.MAX_VALUE.toULong()) Long.MAX_VALUE else this.toLong()
