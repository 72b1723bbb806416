// Key timing capture without the characters (pure Swift + Foundation: compiled and
// tested on Linux). The UIKit keypad helper (TacitKeypad.swift) feeds it touch downs and
// ups; hardware keyboards can feed it UIPress events the same way.
import Foundation
#if canImport(TacitCore)
import TacitCore
#endif

/// Where finished key presses go: the `Tacit` facade (which only enqueues), or a test fake.
public protocol KeystrokeSink: AnyObject, Sendable {
    /// A block of free-text key presses, in press order.
    func recordKeys(_ presses: [KeyPress])
    /// One typed entry of a fixed phrase (the core only hashes the phrase).
    func recordPhraseEntry(phrase: String, events: [KeyPress])
}

/// Counters of a `KeystrokeRecorder`: what was kept and why the rest was dropped.
public struct KeystrokeStats: Sendable, Equatable {
    /// Presses (down matched with an up) handed to the sink.
    public var recorded: UInt64 = 0
    /// Ups without a pending down of the same class.
    public var unmatchedUps: UInt64 = 0
    /// Downs without an up within `KeystrokeRecorder.maxHoldNs`, or still down when the
    /// block ended.
    public var staleDowns: UInt64 = 0
    /// Events earlier than the previous event (or an up before its down).
    public var outOfOrder: UInt64 = 0
    /// Events with a negative timestamp.
    public var invalid: UInt64 = 0
    /// Presses dropped because more than `KeystrokeRecorder.maxPendingPresses` waited
    /// (the app never ended the block or entry).
    public var overflow: UInt64 = 0
}

/// Builds the core's `KeyPress` lists from key downs and ups.
///
/// Only the `KeyClass` of a key is ever stored: `classify(_:)` turns a character into its
/// class and the character is dropped at once, so neither this object nor its
/// description, mirror or counters hold typed text. An up is matched with the oldest
/// pending down of the same class (typists release in press order even when keys
/// overlap); unmatched ups, downs held longer than `maxHoldNs` (2 s) and events that go
/// back in time are dropped and counted. Timestamps are Unix-epoch nanoseconds (convert
/// `UITouch.timestamp` with `MotionConversion.epochNs(uptimeSeconds:)`).
///
/// Soft-keyboard text fields (`UITextField`, `UITextView`) report no key timings on iOS,
/// so free text and phrases are captured only from an in-app keypad (`TacitKeypad`) or a
/// hardware keyboard's `UIPress` events. Thread-safe.
public final class KeystrokeRecorder: @unchecked Sendable, CustomStringConvertible, CustomReflectable {
    /// A down without an up for longer than this (2 s) is dropped: a key held that long is
    /// not typing.
    public static let maxHoldNs: Int64 = 2_000_000_000
    /// Presses kept until `endFreeTextBlock` / `phraseEntry` at most (the core's blocks
    /// are 100 keys, phrases far shorter).
    public static let maxPendingPresses = 512

    private struct Down {
        let keyClass: KeyClass
        let downNs: Int64
        let pressure: Double?
        let area: Double?
    }

    private let sink: KeystrokeSink
    private let lock = NSLock()
    private var downs: [Down] = []
    private var presses: [KeyPress] = []
    private var lastEventNs: Int64 = .min
    private var counters = KeystrokeStats()

    /// Creates a recorder that hands finished blocks to `sink`.
    public init(sink: KeystrokeSink) {
        self.sink = sink
    }

    /// The class of a typed character; the only thing about it that is kept.
    public static func classify(_ character: Character) -> KeyClass {
        switch character {
        case "\u{8}", "\u{7F}": return .backspace
        case "\n", "\r", "\r\n": return .enter
        case " ", "\t": return .space
        default: break
        }
        if character.isNumber { return .digit }
        if character.isLetter { return .letter }
        if character.isPunctuation || character.isSymbol { return .punctuation }
        return .other
    }

    /// The counters so far.
    public var stats: KeystrokeStats {
        lock.lock(); defer { lock.unlock() }
        return counters
    }

    /// Counts only: never the classes or timings of the keys (they describe the typing).
    public var description: String {
        let s = stats
        return "KeystrokeRecorder(recorded: \(s.recorded), unmatchedUps: \(s.unmatchedUps), "
            + "staleDowns: \(s.staleDowns), outOfOrder: \(s.outOfOrder), invalid: \(s.invalid))"
    }

    /// Shows the counters only, so `dump(recorder)` reveals no timings either.
    public var customMirror: Mirror {
        Mirror(self, children: ["stats": stats], displayStyle: .class)
    }

    /// A key of `keyClass` went down at `timeNs` (Unix-epoch ns), with the touch's
    /// pressure and contact area where the platform reports them.
    public func keyDown(_ keyClass: KeyClass, timeNs: Int64, pressure: Double? = nil, area: Double? = nil) {
        lock.lock(); defer { lock.unlock() }
        guard accept(timeNs) else { return }
        downs.append(Down(keyClass: keyClass, downNs: timeNs,
                          pressure: pressure.flatMap { $0.isFinite ? $0 : nil },
                          area: area.flatMap { $0.isFinite ? $0 : nil }))
    }

    /// A key showing `character` went down; only its class is kept.
    public func keyDown(character: Character, timeNs: Int64, pressure: Double? = nil, area: Double? = nil) {
        keyDown(Self.classify(character), timeNs: timeNs, pressure: pressure, area: area)
    }

    /// A key of `keyClass` went up at `timeNs`: completes the oldest pending down of the
    /// same class.
    public func keyUp(_ keyClass: KeyClass, timeNs: Int64) {
        lock.lock(); defer { lock.unlock() }
        guard accept(timeNs) else { return }
        guard let i = downs.firstIndex(where: { $0.keyClass == keyClass }) else {
            counters.unmatchedUps += 1
            return
        }
        let d = downs.remove(at: i)
        // A block or entry the app never ends must not grow without bound.
        guard presses.count < Self.maxPendingPresses else {
            counters.overflow += 1
            return
        }
        presses.append(KeyPress(keyClass: d.keyClass, downNs: d.downNs, upNs: timeNs, pressure: d.pressure, area: d.area))
    }

    /// A key showing `character` went up; only its class is used.
    public func keyUp(character: Character, timeNs: Int64) {
        keyUp(Self.classify(character), timeNs: timeNs)
    }

    /// Ends a block of free text: the finished presses go to the sink's `recordKeys`
    /// (nothing when there are none); keys still down are dropped and counted.
    public func endFreeTextBlock() {
        let block = take()
        if !block.isEmpty { sink.recordKeys(block) }
    }

    /// Ends the typed entry of the fixed phrase `phrase` (password, PIN): the presses go
    /// with it to the sink's `recordPhraseEntry`. The phrase is passed on, not kept.
    public func phraseEntry(_ phrase: String) {
        let block = take()
        if !block.isEmpty { sink.recordPhraseEntry(phrase: phrase, events: block) }
    }

    /// Forgets everything pending (the user cancelled the entry).
    public func discard() {
        _ = take()
    }

    private func take() -> [KeyPress] {
        lock.lock(); defer { lock.unlock() }
        counters.staleDowns += UInt64(downs.count)
        downs = []
        let block = presses.sorted { $0.downNs < $1.downNs }
        presses = []
        counters.recorded += UInt64(block.count)
        return block
    }

    /// Checks an event's time (lock held): drops negative and backwards times and expires
    /// downs held too long.
    private func accept(_ timeNs: Int64) -> Bool {
        guard timeNs >= 0 else {
            counters.invalid += 1
            return false
        }
        guard timeNs >= lastEventNs else {
            counters.outOfOrder += 1
            return false
        }
        lastEventNs = timeNs
        let before = downs.count
        downs.removeAll { timeNs - $0.downNs > Self.maxHoldNs }
        counters.staleDowns += UInt64(before - downs.count)
        return true
    }
}
