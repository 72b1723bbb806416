// NEEDS THE ANDROID SDK: this adapter uses android.* / androidx.* APIs and is NOT compiled
// on the Linux build machines (no Android SDK or Google Maven there); it is built only by
// bindings/android/build-aar.sh. Keep it thin: the logic it calls lives in the pure
// package dev.tacit.sdk, which bindings/tests/kotlin-platform tests on the JVM.
package dev.tacit.sdk.android

import android.view.KeyEvent
import android.view.MotionEvent
import android.view.View
import dev.tacit.sdk.KeyClassifier
import dev.tacit.sdk.KeystrokeRecorder
import dev.tacit.sdk.MotionConversion
import uniffi.tacit.KeyClass

/**
 * Key timings for an in-app keypad and hardware keys, into a [KeystrokeRecorder]
 * (`tacit.keystrokeRecorder()`). Attach [touchListener] to each key view of your own
 * keypad (PIN pad, custom keyboard) with that key's class, and [keyListener] to views
 * receiving hardware key events. The system soft keyboard gives apps no key timings:
 * text typed into an `EditText` through it cannot be recorded.
 *
 * Only the key's class reaches the recorder; the listeners never consume events.
 * Use on the UI thread.
 */
class KeypadTimings(private val recorder: KeystrokeRecorder) {
    // MotionEvent and KeyEvent times are SystemClock.uptimeMillis().
    private val conversion = MotionConversion(UptimeClock)

    /** A touch listener for a key view of class [keyClass] (pressure and size included). */
    fun touchListener(keyClass: KeyClass): View.OnTouchListener = View.OnTouchListener { _, event ->
        val i = event.actionIndex
        val pointer = event.getPointerId(i)
        when (event.actionMasked) {
            MotionEvent.ACTION_DOWN, MotionEvent.ACTION_POINTER_DOWN -> epochNs(event.eventTime)?.let {
                recorder.keyDown(keyClass, it, event.getPressure(i).toDouble(), event.getSize(i).toDouble(), pointer)
            }
            MotionEvent.ACTION_UP, MotionEvent.ACTION_POINTER_UP ->
                epochNs(event.eventTime)?.let { recorder.keyUp(keyClass, it, pointer) }
            MotionEvent.ACTION_CANCEL -> recorder.keyCancel(keyClass, pointer)
        }
        false // the view still handles the touch (click, ripple)
    }

    /** A key listener for hardware keys: classifies each key and drops it at once. */
    val keyListener: View.OnKeyListener = View.OnKeyListener { _, keyCode, event ->
        val keyClass = classify(keyCode, event)
        when (event.action) {
            // Auto-repeat is not a new press.
            KeyEvent.ACTION_DOWN -> if (event.repeatCount == 0) epochNs(event.eventTime)?.let { recorder.keyDown(keyClass, it) }
            KeyEvent.ACTION_UP -> epochNs(event.eventTime)?.let { recorder.keyUp(keyClass, it) }
        }
        false
    }

    private fun epochNs(uptimeMs: Long): Long? = conversion.toEpochNs(uptimeMs * 1_000_000L)

    /** Helpers. */
    companion object {
        /**
         * The class of a hardware key. The character is looked up with the event's meta
         * state (shift+1 is punctuation) and dropped here; if the modifier is released
         * before the key, down and up may classify differently and the press is dropped
         * as unmatched, which is rare and keeps no key identity in memory.
         */
        fun classify(keyCode: Int, event: KeyEvent): KeyClass = when {
            keyCode == KeyEvent.KEYCODE_DEL || keyCode == KeyEvent.KEYCODE_FORWARD_DEL -> KeyClass.BACKSPACE
            keyCode == KeyEvent.KEYCODE_ENTER || keyCode == KeyEvent.KEYCODE_NUMPAD_ENTER -> KeyClass.ENTER
            keyCode == KeyEvent.KEYCODE_SPACE -> KeyClass.SPACE
            KeyEvent.isModifierKey(keyCode) -> KeyClass.MODIFIER
            else -> KeyClassifier.classifyCodePoint(event.getUnicodeChar(event.metaState))
        }
    }
}
