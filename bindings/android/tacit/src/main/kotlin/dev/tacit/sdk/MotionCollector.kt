// The platform-independent part of motion collection: pairing, conversion and batching.
// The Android adapter (dev.tacit.sdk.android.AndroidMotionSensors) only forwards
// SensorEvents here.
package dev.tacit.sdk

import uniffi.tacit.MotionReading
import uniffi.tacit.Vector3

/**
 * Counters of a [MotionCollector] (no sample values: nothing here says how the phone
 * moved).
 */
data class MotionCollectorStats(
    /** Readings handed on in batches. */
    val readings: Long,
    /** Of those, readings paired with a gyroscope reading. */
    val withGyro: Long,
    /** Batches handed to the sink. */
    val batches: Long,
    /** Accelerometer readings refused: NaN/infinite values or an impossible timestamp. */
    val droppedInvalid: Long,
    /** Accelerometer readings refused because their time did not move forward. */
    val droppedOutOfOrder: Long,
    /** Gyroscope readings refused (NaN/infinite values, negative timestamp). */
    val droppedGyro: Long,
)

/**
 * Turns raw accelerometer and gyroscope events into [MotionReading] batches for the core.
 *
 * - Each accelerometer reading is paired with the newest gyroscope reading at most
 *   [PAIRING_WINDOW_NS] (20 ms, one sample period at 50 Hz) away from it; otherwise its
 *   gyro is null (the core accepts that, and a stale rotation would be worse than none).
 * - Event times are in the platform's monotonic base and converted with [conversion]
 *   to Unix-epoch ns; invalid values are dropped and counted, never passed on.
 * - Readings are batched: [batchSize] readings (50 = one second at 50 Hz) or [stop]
 *   hand a batch to [sink]. The sink must only enqueue (the facade's
 *   [Tacit.recordMotion] does): it is called on the sensor thread, and the core is never
 *   called there.
 *
 * Thread-safe: sensor callbacks and [stop]/[flush] from another thread are serialised,
 * and batches reach the sink in time order.
 */
class MotionCollector(
    private val conversion: MotionConversion,
    /** Readings per batch. */
    val batchSize: Int = DEFAULT_BATCH_SIZE,
    private val sink: (List<MotionReading>) -> Unit,
) {
    init {
        require(batchSize > 0) { "batchSize must be positive, got $batchSize" }
    }

    private val lock = Any()
    private var batch = ArrayList<MotionReading>(batchSize)
    private var gyroNs = Long.MIN_VALUE
    private var gyro: Vector3? = null
    private var lastEpochNs = Long.MIN_VALUE
    private var readings = 0L
    private var withGyro = 0L
    private var batches = 0L
    private var droppedInvalid = 0L
    private var droppedOutOfOrder = 0L
    private var droppedGyro = 0L
    private var running = true

    /**
     * One accelerometer event: [eventNs] in the monotonic base of the conversion's
     * clock, acceleration in m/s² with gravity, Android convention (face-up at rest reads
     * about (0, 0, +9.81)).
     */
    fun onAccelerometer(eventNs: Long, x: Double, y: Double, z: Double) {
        synchronized(lock) {
            if (!running) return
            if (!MotionUnits.finite(x, y, z)) {
                droppedInvalid++
                return
            }
            val epoch = conversion.toEpochNs(eventNs)
            if (epoch == null) {
                droppedInvalid++
                return
            }
            // A re-anchored offset can step back by a few ms; the core wants time to move
            // forward, so such a reading is dropped here rather than refused there.
            if (epoch <= lastEpochNs) {
                droppedOutOfOrder++
                return
            }
            lastEpochNs = epoch
            val g = gyro?.takeIf { gyroNs != Long.MIN_VALUE && Math.abs(eventNs - gyroNs) <= PAIRING_WINDOW_NS }
            if (g != null) withGyro++
            readings++
            batch.add(MotionReading(epoch, Vector3(x, y, z), g))
            // The sink is called under the lock so that batches arrive in order even when
            // stop() runs on another thread; it only enqueues, so this is short.
            if (batch.size >= batchSize) sink(takeBatch())
        }
    }

    /** One gyroscope event: [eventNs] in the same base as the accelerometer's, rad/s. */
    fun onGyroscope(eventNs: Long, x: Double, y: Double, z: Double) {
        synchronized(lock) {
            if (!running) return
            if (eventNs < 0 || !MotionUnits.finite(x, y, z)) {
                droppedGyro++
                return
            }
            gyroNs = eventNs
            gyro = Vector3(x, y, z)
        }
    }

    /** Hands the readings collected so far to the sink (nothing when there are none). */
    fun flush() {
        synchronized(lock) { if (batch.isNotEmpty()) sink(takeBatch()) }
    }

    /** Flushes the last partial batch and ignores later events. */
    fun stop() {
        synchronized(lock) {
            running = false
            if (batch.isNotEmpty()) sink(takeBatch())
        }
    }

    /** Accepts events again after [stop] (the gyro pairing starts afresh). */
    fun restart() {
        synchronized(lock) {
            running = true
            gyro = null
            gyroNs = Long.MIN_VALUE
        }
    }

    /** A snapshot of the counters. */
    fun stats(): MotionCollectorStats = synchronized(lock) {
        MotionCollectorStats(
            readings = readings,
            withGyro = withGyro,
            batches = batches,
            droppedInvalid = droppedInvalid,
            droppedOutOfOrder = droppedOutOfOrder,
            droppedGyro = droppedGyro,
        )
    }

    override fun toString(): String = "MotionCollector(${stats()})"

    private fun takeBatch(): List<MotionReading> {
        val out = batch
        batch = ArrayList(batchSize)
        batches++
        return out
    }

    /** Constants of the collection. */
    companion object {
        /** 50 Hz: what the core resamples gait to. */
        const val SAMPLING_PERIOD_US = 20_000

        /** One second of readings at 50 Hz. */
        const val DEFAULT_BATCH_SIZE = 50

        /** The largest distance between an accelerometer and the gyro reading paired with it. */
        const val PAIRING_WINDOW_NS = 20_000_000L
    }
}
