// Apple-only adapter: needs UIKit (iOS SDK). It is NOT compiled on the Linux build
// machines (no Apple SDKs there; `#if canImport(UIKit)` leaves the file empty), so it has
// no test here: the recorder it feeds (KeystrokeRecorder: matching, drops, no characters
// kept) is tested on Linux. Check it in Xcode before a release.
#if canImport(UIKit) && !os(watchOS)
import Foundation
import UIKit
#if canImport(TacitCore)
import TacitCore
#endif

/// Connects the keys of an in-app keypad (any `UIControl`: buttons of a PIN pad, a custom
/// keyboard view) to a `KeystrokeRecorder`: touch down → `keyDown`, touch up (inside,
/// outside) or cancel → `keyUp`, with `UITouch.timestamp` converted to Unix time, the
/// pressure as `force / maximumPossibleForce` (3D Touch / Apple Pencil; nil otherwise)
/// and the area as the touch diameter over the screen's shorter side.
///
/// The system keyboard gives apps no key timings (a `UITextField` only sees the text), so
/// key dynamics come only from an in-app keypad like this or from hardware keyboard
/// `UIPress` events. Each control is attached with its `KeyClass`, never its character.
@MainActor
public final class TacitKeypad: NSObject {
    private let recorder: KeystrokeRecorder
    private let conversion: MotionConversion
    private var classes: [ObjectIdentifier: KeyClass] = [:]

    /// Creates the helper feeding `recorder`; `conversion` turns touch times into Unix time.
    public init(recorder: KeystrokeRecorder, conversion: MotionConversion = MotionConversion()) {
        self.recorder = recorder
        self.conversion = conversion
    }

    /// Records the touches of `control` as presses of a `keyClass` key.
    public func attach(_ control: UIControl, keyClass: KeyClass) {
        classes[ObjectIdentifier(control)] = keyClass
        control.addTarget(self, action: #selector(down(_:event:)), for: .touchDown)
        control.addTarget(self, action: #selector(up(_:event:)), for: [.touchUpInside, .touchUpOutside, .touchCancel])
    }

    /// Stops recording `control`.
    public func detach(_ control: UIControl) {
        control.removeTarget(self, action: nil, for: .allEvents)
        classes[ObjectIdentifier(control)] = nil
    }

    @objc private func down(_ sender: UIControl, event: UIEvent) {
        guard let keyClass = classes[ObjectIdentifier(sender)], let touch = event.touches(for: sender)?.first,
              let t = conversion.epochNs(uptimeSeconds: touch.timestamp)
        else { return }
        let pressure = touch.maximumPossibleForce > 0 ? Double(touch.force / touch.maximumPossibleForce) : nil
        let side = min(sender.window?.screen.bounds.width ?? 0, sender.window?.screen.bounds.height ?? 0)
        let area = side > 0 ? min(1, Double(2 * touch.majorRadius / side)) : nil
        recorder.keyDown(keyClass, timeNs: t, pressure: pressure, area: area)
    }

    @objc private func up(_ sender: UIControl, event: UIEvent) {
        guard let keyClass = classes[ObjectIdentifier(sender)], let touch = event.touches(for: sender)?.first,
              let t = conversion.epochNs(uptimeSeconds: touch.timestamp)
        else { return }
        recorder.keyUp(keyClass, timeNs: t)
    }
}
#endif
