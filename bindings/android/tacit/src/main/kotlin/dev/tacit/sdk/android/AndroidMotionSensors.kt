// NEEDS THE ANDROID SDK: this adapter uses android.* / androidx.* APIs and is NOT compiled
// on the Linux build machines (no Android SDK or Google Maven there); it is built only by
// bindings/android/build-aar.sh. Keep it thin: the logic it calls lives in the pure
// package dev.tacit.sdk, which bindings/tests/kotlin-platform tests on the JVM.
package dev.tacit.sdk.android

import android.content.Context
import android.hardware.Sensor
import android.hardware.SensorEvent
import android.hardware.SensorEventListener
import android.hardware.SensorManager
import android.os.Handler
import android.os.HandlerThread
import dev.tacit.sdk.MotionCollector
import dev.tacit.sdk.Tacit

/**
 * Feeds the accelerometer (`TYPE_ACCELEROMETER`, m/s² with gravity: the core's
 * convention) and gyroscope (`TYPE_GYROSCOPE`, rad/s) at 50 Hz
 * ([MotionCollector.SAMPLING_PERIOD_US], like `SENSOR_DELAY_GAME`) into a
 * [MotionCollector]. Events arrive on a private `HandlerThread`, never the main thread;
 * the collector converts, pairs and batches them, and the facade's queue takes the batches.
 *
 * Create it with `AndroidMotionSensors(context, tacit.motionCollector(ElapsedRealtimeClock))`
 * or [forTacit]. Call [start] when collection should run (e.g. a foreground service:
 * Android pauses sensors of background apps) and [stop] after.
 */
class AndroidMotionSensors(context: Context, private val collector: MotionCollector) {
    private val sensorManager: SensorManager? = context.getSystemService(SensorManager::class.java)
    private var thread: HandlerThread? = null

    private val listener = object : SensorEventListener {
        override fun onSensorChanged(event: SensorEvent) {
            val v = event.values
            if (v.size < 3) return
            when (event.sensor.type) {
                Sensor.TYPE_ACCELEROMETER ->
                    collector.onAccelerometer(event.timestamp, v[0].toDouble(), v[1].toDouble(), v[2].toDouble())
                Sensor.TYPE_GYROSCOPE ->
                    collector.onGyroscope(event.timestamp, v[0].toDouble(), v[1].toDouble(), v[2].toDouble())
            }
        }

        override fun onAccuracyChanged(sensor: Sensor, accuracy: Int) = Unit
    }

    /**
     * Starts the sensors. Returns false when the device has no accelerometer (gait
     * cannot be recorded); a missing gyroscope only leaves readings without rotation.
     */
    @Synchronized
    fun start(): Boolean {
        if (thread != null) return true
        val sm = sensorManager ?: return false
        val accel = sm.getDefaultSensor(Sensor.TYPE_ACCELEROMETER) ?: return false
        val t = HandlerThread("tacit-sensors").also { it.start() }
        val handler = Handler(t.looper)
        collector.restart()
        sm.registerListener(listener, accel, MotionCollector.SAMPLING_PERIOD_US, handler)
        sm.getDefaultSensor(Sensor.TYPE_GYROSCOPE)?.let {
            sm.registerListener(listener, it, MotionCollector.SAMPLING_PERIOD_US, handler)
        }
        thread = t
        return true
    }

    /** Stops the sensors and hands the last partial batch on. */
    @Synchronized
    fun stop() {
        val t = thread ?: return
        sensorManager?.unregisterListener(listener)
        // Events already queued on the thread are ignored by the stopped collector.
        collector.stop()
        t.quitSafely()
        thread = null
    }

    /** Constructors. */
    companion object {
        /** Sensors feeding [tacit] (with the elapsed-realtime clock of `SensorEvent`). */
        fun forTacit(context: Context, tacit: Tacit): AndroidMotionSensors =
            AndroidMotionSensors(context, tacit.motionCollector(ElapsedRealtimeClock))
    }
}
