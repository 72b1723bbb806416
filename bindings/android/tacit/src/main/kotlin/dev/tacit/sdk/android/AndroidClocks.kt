// NEEDS THE ANDROID SDK: this adapter uses android.* / androidx.* APIs and is NOT compiled
// on the Linux build machines (no Android SDK or Google Maven there); it is built only by
// bindings/android/build-aar.sh. Keep it thin: the logic it calls lives in the pure
// package dev.tacit.sdk, which bindings/tests/kotlin-platform tests on the JVM.
package dev.tacit.sdk.android

import android.os.SystemClock
import dev.tacit.sdk.SensorClock

/**
 * The clocks of `SensorEvent.timestamp`: wall time and
 * `SystemClock.elapsedRealtimeNanos()` (which keeps counting in deep sleep).
 */
object ElapsedRealtimeClock : SensorClock {
    override fun wallNs(): Long = System.currentTimeMillis() * 1_000_000L
    override fun monotonicNs(): Long = SystemClock.elapsedRealtimeNanos()
}

/**
 * The clocks of `MotionEvent.getEventTime()` / `KeyEvent.getEventTime()`: wall time and
 * `SystemClock.uptimeMillis()` (in ns; it stops in deep sleep, which never happens while
 * the user types).
 */
object UptimeClock : SensorClock {
    override fun wallNs(): Long = System.currentTimeMillis() * 1_000_000L
    override fun monotonicNs(): Long = SystemClock.uptimeMillis() * 1_000_000L
}
