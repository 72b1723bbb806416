// Keystroke timing without the characters: key classes, down/up pairing, drop rules and
// blocks. The Android adapters (dev.tacit.sdk.android.KeypadTouchListener,
// HardwareKeyListener) only forward touch and key events here.
package dev.tacit.sdk

import uniffi.tacit.KeyClass
import uniffi.tacit.KeyPress

/**
 * Classifies a typed character into the [KeyClass] the core wants. Only the class
 * leaves this function: callers must drop the character right after (the recorder
 * never sees it).
 */
object KeyClassifier {
    /** The class of [c]: '\b' and DEL are backspace, '\n'/'\r' enter, ' ' space. */
    fun classify(c: Char): KeyClass = classifyCodePoint(c.code)

    /** The class of a Unicode code point (Android `KeyEvent.getUnicodeChar()`); 0 = none. */
    fun classifyCodePoint(cp: Int): KeyClass = when {
        cp == '\b'.code || cp == 0x7f -> KeyClass.BACKSPACE
        cp == '\n'.code || cp == '\r'.code -> KeyClass.ENTER
        cp == ' '.code || cp == '\t'.code -> KeyClass.SPACE
        cp <= 0 || cp > Character.MAX_CODE_POINT -> KeyClass.OTHER
        Character.isDigit(cp) -> KeyClass.DIGIT
        Character.isLetter(cp) -> KeyClass.LETTER
        Character.isISOControl(cp) -> KeyClass.OTHER
        Character.isWhitespace(cp) -> KeyClass.SPACE
        else -> KeyClass.PUNCTUATION
    }
}

/** Counters of a [KeystrokeRecorder] (how many, never which keys). */
data class KeystrokeStats(
    /** Key presses completed (down and up paired). */
    val presses: Long,
    /** Free-text blocks handed to the key sink. */
    val blocks: Long,
    /** Phrase entries handed to the phrase sink. */
    val phraseEntries: Long,
    /** Key-ups without a matching key-down. */
    val droppedUnmatchedUp: Long,
    /** Key-downs without a key-up within [KeystrokeRecorder.MAX_HOLD_NS]. */
    val droppedStaleDown: Long,
    /** Events earlier than the previous one, or an up before its down. */
    val droppedOutOfOrder: Long,
    /** Touches the platform cancelled (a swipe off the key). */
    val cancelled: Long,
    /** Presses dropped because a phrase grew past [KeystrokeRecorder.MAX_PHRASE_KEYS] without [KeystrokeRecorder.phraseEntry]. */
    val droppedOverflow: Long = 0,
)

/**
 * Builds [KeyPress] lists from key-down / key-up events, for an in-app keypad (touch
 * down/up on its key views, with pressure and area) or hardware keys. Times are Unix-epoch
 * ns (convert platform event times with a [MotionConversion]).
 *
 * Only [KeyClass]es are kept: no character, key code or text is stored here (see
 * [KeyClassifier]); [toString] shows counters only. The soft keyboard's text fields give
 * an app no key timings, so free text can only be recorded from the app's own keypad or
 * hardware keys.
 *
 * Pairing: a key-up completes the oldest pending key-down of the same class and
 * [pointer][keyDown] (touch pointer id, or 0). Dropped and counted: key-ups without a
 * pending down, key-downs without an up for more than [MAX_HOLD_NS] (2 s), events whose
 * time is earlier than the previous event's.
 *
 * Free text: completed presses are handed to [keySink] (the facade's
 * [Tacit.recordKeys]) every [blockSize] presses and on [flush]. A phrase (password, PIN):
 * call [beginPhrase] before its first key and [phraseEntry] with the phrase when it is
 * submitted; its presses go to [phraseSink] with it and the phrase is not kept.
 *
 * Thread-safe (the UI thread normally calls it).
 */
class KeystrokeRecorder(
    /** Completed presses per free-text block handed to [keySink]. */
    val blockSize: Int = DEFAULT_BLOCK_SIZE,
    private val keySink: (List<KeyPress>) -> Unit,
    private val phraseSink: (String, List<KeyPress>) -> Unit,
) {
    init {
        require(blockSize > 0) { "blockSize must be positive, got $blockSize" }
    }

    // A pending key-down: class and timing only.
    private class Down(val keyClass: KeyClass, val pointer: Int, val downNs: Long, val pressure: Double?, val area: Double?)

    private val lock = Any()
    private val downs = ArrayList<Down>()
    private var completed = ArrayList<KeyPress>()
    private var inPhrase = false
    private var lastNs = Long.MIN_VALUE
    private var presses = 0L
    private var blocks = 0L
    private var phraseEntries = 0L
    private var overflow = 0L
    private var unmatchedUp = 0L
    private var staleDown = 0L
    private var outOfOrder = 0L
    private var cancelled = 0L

    /**
     * A key went down at [timeNs]. [pressure] and [area] are the touch's normalised
     * values where the platform has them (Android `MotionEvent.getPressure()` /
     * `getSize()`); non-finite values are left out.
     */
    fun keyDown(keyClass: KeyClass, timeNs: Long, pressure: Double? = null, area: Double? = null, pointer: Int = 0) {
        synchronized(lock) {
            if (!advance(timeNs)) return
            downs.add(Down(keyClass, pointer, timeNs, pressure?.takeIf { it.isFinite() }, area?.takeIf { it.isFinite() }))
        }
    }

    /** A key went up at [timeNs]: completes the oldest matching key-down. */
    fun keyUp(keyClass: KeyClass, timeNs: Long, pointer: Int = 0) {
        synchronized(lock) {
            if (!advance(timeNs)) return
            val i = downs.indexOfFirst { it.keyClass == keyClass && it.pointer == pointer }
            if (i < 0) {
                unmatchedUp++
                return
            }
            val d = downs.removeAt(i)
            // A phrase is short; one that never ends (the app forgot phraseEntry) must not
            // grow without bound.
            if (inPhrase && completed.size >= MAX_PHRASE_KEYS) {
                overflow++
                return
            }
            completed.add(KeyPress(d.keyClass, d.downNs, timeNs, d.pressure, d.area))
            presses++
            if (!inPhrase && completed.size >= blockSize) handOffBlock()
        }
    }

    /** The platform cancelled a touch (the finger slid off): forgets its key-down. */
    fun keyCancel(keyClass: KeyClass, pointer: Int = 0) {
        synchronized(lock) {
            val i = downs.indexOfFirst { it.keyClass == keyClass && it.pointer == pointer }
            if (i >= 0) {
                downs.removeAt(i)
                cancelled++
            }
        }
    }

    /** Hands the free-text presses completed so far to the key sink. */
    fun flush() {
        synchronized(lock) {
            if (!inPhrase) handOffBlock()
        }
    }

    /**
     * The next keys are a fixed phrase: free text typed before is handed on first, so it
     * does not mix with the phrase's presses.
     */
    fun beginPhrase() {
        synchronized(lock) {
            handOffBlock()
            downs.clear()
            inPhrase = true
        }
    }

    /**
     * The phrase was submitted: hands [phrase] with the presses since [beginPhrase]
     * (or since the last block) to the phrase sink, which passes it to the core (the
     * core only hashes it). Nothing is handed on when no press was completed.
     */
    fun phraseEntry(phrase: String) {
        synchronized(lock) {
            val keys = completed
            completed = ArrayList()
            downs.clear()
            inPhrase = false
            if (keys.isEmpty()) return
            phraseEntries++
            phraseSink(phrase, keys)
        }
    }

    /** Discards the presses of a phrase that was abandoned. */
    fun cancelPhrase() {
        synchronized(lock) {
            completed = ArrayList()
            downs.clear()
            inPhrase = false
        }
    }

    /** A snapshot of the counters. */
    fun stats(): KeystrokeStats = synchronized(lock) {
        KeystrokeStats(presses, blocks, phraseEntries, unmatchedUp, staleDown, outOfOrder, cancelled, overflow)
    }

    /** Counters only: no key, class sequence or text. */
    override fun toString(): String = "KeystrokeRecorder(${stats()})"

    // Checks the event's time (moves forward, not negative) and expires stale downs.
    private fun advance(timeNs: Long): Boolean {
        if (timeNs < 0 || timeNs < lastNs) {
            outOfOrder++
            return false
        }
        lastNs = timeNs
        val before = downs.size
        downs.removeAll { timeNs - it.downNs > MAX_HOLD_NS }
        staleDown += before - downs.size
        return true
    }

    private fun handOffBlock() {
        if (completed.isEmpty()) return
        val keys = completed
        completed = ArrayList()
        blocks++
        keySink(keys)
    }

    /** Limits of the recorder. */
    companion object {
        /** A key held longer than this (2 s) is taken as a missed key-up and dropped. */
        const val MAX_HOLD_NS = 2_000_000_000L

        /** Presses kept for one phrase at most (passwords and PINs are far shorter). */
        const val MAX_PHRASE_KEYS = 256

        /** Presses per free-text block. */
        const val DEFAULT_BLOCK_SIZE = 50
    }
}
