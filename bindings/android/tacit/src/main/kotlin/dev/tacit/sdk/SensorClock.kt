// Clock and unit conversion for sensor and touch timestamps (plain Kotlin, tested on the
// JVM by bindings/tests/kotlin-platform).
package dev.tacit.sdk

import java.util.concurrent.TimeUnit

/**
 * The two clocks a platform timestamp is converted with. Injectable so that tests can
 * jump the wall clock or run a fake boot clock.
 */
interface SensorClock {
    /** Wall-clock time, Unix-epoch nanoseconds (may jump when the user or NTP sets it). */
    fun wallNs(): Long

    /**
     * The monotonic clock the platform stamps its events with, in nanoseconds. On
     * Android `SystemClock.elapsedRealtimeNanos()` for `SensorEvent.timestamp`
     * (see `dev.tacit.sdk.android.ElapsedRealtimeClock`).
     */
    fun monotonicNs(): Long
}

/**
 * A [SensorClock] from the JVM alone: `System.currentTimeMillis()` and
 * `System.nanoTime()`. Right for events stamped with `System.nanoTime()`; on Android use
 * `ElapsedRealtimeClock`, whose monotonic clock is the one `SensorEvent.timestamp` uses.
 */
object SystemSensorClock : SensorClock {
    override fun wallNs(): Long = TimeUnit.MILLISECONDS.toNanos(System.currentTimeMillis())
    override fun monotonicNs(): Long = System.nanoTime()
}

/**
 * Converts monotonic event timestamps (Android `SensorEvent.timestamp`, in the
 * `elapsedRealtimeNanos` base) to the Unix-epoch nanoseconds the core wants:
 * `epoch = event + (wall − monotonic)`.
 *
 * The offset is sampled from [clock] and kept (re-anchored) for [reanchorIntervalNs] of
 * monotonic time, so that the millisecond jitter of the wall clock does not shake the
 * timestamps of a 50 Hz stream; it is recomputed at once when the wall clock jumped by
 * more than [jumpThresholdNs] (the user or NTP set it), because every reading after the
 * jump would otherwise carry the old time.
 *
 * Timestamps that cannot be right are refused (null, counted in [dropped]): negative
 * event times and results that overflow or fall before 1970. Not thread-safe: one
 * conversion per event source (the collector serialises its calls).
 */
class MotionConversion(
    private val clock: SensorClock,
    /** How long an offset is kept before it is sampled again (default 5 s). */
    val reanchorIntervalNs: Long = 5_000_000_000L,
    /** A difference between the kept and the current offset above this is a jump (1 s). */
    val jumpThresholdNs: Long = 1_000_000_000L,
) {
    private var offsetNs: Long = 0
    private var anchoredAtNs: Long = 0
    private var anchored = false

    /** Timestamps refused so far (negative, overflowing, before the epoch). */
    var dropped: Long = 0
        private set

    /** How many times the offset was (re)computed; for diagnostics and tests. */
    var anchors: Long = 0
        private set

    /**
     * The Unix-epoch time of a monotonic event time [eventNs], or null (counted in
     * [dropped]) when it cannot be a real time.
     */
    fun toEpochNs(eventNs: Long): Long? {
        if (eventNs < 0) {
            dropped++
            return null
        }
        refreshOffset()
        val epoch = try {
            Math.addExact(eventNs, offsetNs)
        } catch (_: ArithmeticException) {
            dropped++
            return null
        }
        if (epoch < 0) {
            dropped++
            return null
        }
        return epoch
    }

    /** The offset currently applied (wall − monotonic), sampling it first if due. */
    fun currentOffsetNs(): Long {
        refreshOffset()
        return offsetNs
    }

    private fun refreshOffset() {
        val mono = clock.monotonicNs()
        // Both clocks are read back to back; the difference is the offset "now".
        val now = try {
            Math.subtractExact(clock.wallNs(), mono)
        } catch (_: ArithmeticException) {
            return // a nonsensical clock: keep the previous offset
        }
        val due = !anchored || mono - anchoredAtNs >= reanchorIntervalNs || mono < anchoredAtNs
        val jumped = anchored && Math.abs(now - offsetNs) > jumpThresholdNs
        if (due || jumped) {
            offsetNs = now
            anchoredAtNs = mono
            anchored = true
            anchors++
        }
    }
}

/** Helpers shared by the collectors: unit conversions and sanity checks. */
object MotionUnits {
    /** Standard gravity, m/s² (iOS reports acceleration in g). */
    const val STANDARD_GRAVITY = 9.80665

    /** Whether every component is a finite number (NaN and infinities never reach the core). */
    fun finite(x: Double, y: Double, z: Double): Boolean = x.isFinite() && y.isFinite() && z.isFinite()
}
