// Clock and unit conversion from CoreMotion's conventions to the core's (pure Swift +
// Foundation: compiled and tested on Linux too).
//
// CoreMotion stamps samples with seconds since boot and reports acceleration in g with
// the opposite sign of Android; the core wants Unix-epoch nanoseconds and m/s² in the
// Android convention (a phone lying face-up reads about (0, 0, +9.81)).
import Foundation
#if canImport(TacitCore)
import TacitCore
#endif

/// The two time bases the conversion relates, injectable so tests can move the wall clock.
public protocol SensorClock: Sendable {
    /// Wall-clock time in Unix-epoch nanoseconds. It may jump (NTP, the user setting the
    /// time, a time-zone-independent correction), which is why it is sampled again.
    func wallNs() -> Int64
    /// Time since boot in nanoseconds: the base of `CMLogItem.timestamp` and
    /// `UITouch.timestamp` (`ProcessInfo.systemUptime`). It never jumps.
    func uptimeNs() -> Int64
}

/// The real clocks: `Date` for the wall clock, `ProcessInfo.systemUptime` for the boot
/// time base (the one CoreMotion and UIKit use on Apple platforms).
public struct SystemSensorClock: SensorClock {
    /// Creates the system clock.
    public init() {}

    /// `Date()` in Unix-epoch nanoseconds.
    public func wallNs() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1e9).rounded())
    }

    /// `ProcessInfo.processInfo.systemUptime` in nanoseconds.
    public func uptimeNs() -> Int64 {
        Int64((ProcessInfo.processInfo.systemUptime * 1e9).rounded())
    }
}

/// One `CMDeviceMotion` sample as plain values (the CoreMotion adapter copies them out,
/// so the conversion and the collector can be tested without Apple's SDK).
public struct DeviceMotionSample: Sendable, Equatable {
    /// `CMLogItem.timestamp`: seconds since boot.
    public var timestamp: TimeInterval
    /// `CMDeviceMotion.userAcceleration`, in g, CoreMotion's sign.
    public var userAcceleration: Vector3
    /// `CMDeviceMotion.gravity`, in g, CoreMotion's sign (face-up at rest: (0, 0, -1)).
    public var gravity: Vector3
    /// `CMDeviceMotion.rotationRate` in rad/s (already the core's unit); nil without a gyroscope.
    public var rotationRate: Vector3?

    /// Creates a sample from CoreMotion's values.
    public init(timestamp: TimeInterval, userAcceleration: Vector3, gravity: Vector3, rotationRate: Vector3?) {
        self.timestamp = timestamp
        self.userAcceleration = userAcceleration
        self.gravity = gravity
        self.rotationRate = rotationRate
    }
}

/// One raw `CMAccelerometerData` sample (for devices or apps that use the raw
/// accelerometer instead of device motion).
public struct AccelerometerSample: Sendable, Equatable {
    /// `CMLogItem.timestamp`: seconds since boot.
    public var timestamp: TimeInterval
    /// `CMAccelerometerData.acceleration` in g, gravity included, CoreMotion's sign.
    public var acceleration: Vector3

    /// Creates a sample from CoreMotion's values.
    public init(timestamp: TimeInterval, acceleration: Vector3) {
        self.timestamp = timestamp
        self.acceleration = acceleration
    }
}

/// One raw `CMGyroData` sample.
public struct GyroSample: Sendable, Equatable {
    /// `CMLogItem.timestamp`: seconds since boot.
    public var timestamp: TimeInterval
    /// `CMGyroData.rotationRate` in rad/s.
    public var rotationRate: Vector3

    /// Creates a sample from CoreMotion's values.
    public init(timestamp: TimeInterval, rotationRate: Vector3) {
        self.timestamp = timestamp
        self.rotationRate = rotationRate
    }
}

/// Converts boot-relative timestamps to Unix-epoch nanoseconds and CoreMotion's
/// acceleration (g, opposite sign) to the core's m/s².
///
/// The offset between the wall clock and the boot clock is measured ("anchored") on first
/// use and again at most every `reanchorIntervalNs`, or at once when the wall clock
/// jumped by more than `wallJumpThresholdNs`: re-measuring on every sample would let
/// scheduling jitter reorder nearby timestamps, never re-measuring would keep a wrong
/// offset after the user or NTP corrected the clock. Thread-safe.
public final class MotionConversion: @unchecked Sendable {
    /// Standard gravity, m/s² per g (CoreMotion's unit).
    public static let standardGravity = 9.80665
    /// The offset is re-measured at most this often (5 s) unless the wall clock jumped.
    public static let reanchorIntervalNs: Int64 = 5_000_000_000
    /// A difference between the held and the fresh offset above this (1 s) is a wall
    /// clock jump and re-anchors at once.
    public static let wallJumpThresholdNs: Int64 = 1_000_000_000

    private let clock: SensorClock
    private let lock = NSLock()
    private var offsetNs: Int64?
    private var anchoredAtUptimeNs: Int64 = 0
    private var anchorCount: UInt64 = 0
    private var droppedCount: UInt64 = 0

    /// Creates a conversion over `clock` (the system clocks by default).
    public init(clock: SensorClock = SystemSensorClock()) {
        self.clock = clock
    }

    /// How many samples were refused (non-finite values, negative or overflowing
    /// timestamps) before reaching the core.
    public var dropped: UInt64 {
        lock.lock(); defer { lock.unlock() }
        return droppedCount
    }

    /// How many times the offset was measured (first use, interval, clock jumps).
    public var anchors: UInt64 {
        lock.lock(); defer { lock.unlock() }
        return anchorCount
    }

    /// The current wall-minus-boot offset in nanoseconds, re-measured when due.
    public func currentOffsetNs() -> Int64 {
        lock.lock(); defer { lock.unlock() }
        return offsetLocked()
    }

    private func offsetLocked() -> Int64 {
        let up = clock.uptimeNs()
        let (fresh, overflow) = clock.wallNs().subtractingReportingOverflow(up)
        if let held = offsetNs {
            let (diff, diffOverflow) = fresh.subtractingReportingOverflow(held)
            let jumped = overflow || diffOverflow || diff.magnitude > UInt64(Self.wallJumpThresholdNs)
            let due = up &- anchoredAtUptimeNs >= Self.reanchorIntervalNs || up < anchoredAtUptimeNs
            if !jumped && !due { return held }
        }
        offsetNs = overflow ? 0 : fresh
        anchoredAtUptimeNs = up
        anchorCount += 1
        return offsetNs ?? 0
    }

    /// Unix-epoch nanoseconds of a boot-relative timestamp in seconds
    /// (`CMLogItem.timestamp`, `UITouch.timestamp`); nil, counted as dropped, when it is
    /// not finite, negative, or the result would overflow or precede 1970.
    public func epochNs(uptimeSeconds: TimeInterval) -> Int64? {
        guard uptimeSeconds.isFinite, uptimeSeconds >= 0, uptimeSeconds < 9.0e9 else {
            countDrop()
            return nil
        }
        return epochNs(uptimeNs: Int64((uptimeSeconds * 1e9).rounded()))
    }

    /// Unix-epoch nanoseconds of a boot-relative timestamp in nanoseconds; nil, counted as
    /// dropped, when negative or out of range.
    public func epochNs(uptimeNs: Int64) -> Int64? {
        lock.lock(); defer { lock.unlock() }
        guard uptimeNs >= 0 else {
            droppedCount += 1
            return nil
        }
        let (epoch, overflow) = uptimeNs.addingReportingOverflow(offsetLocked())
        guard !overflow, epoch >= 0 else {
            droppedCount += 1
            return nil
        }
        return epoch
    }

    /// CoreMotion acceleration (g, gravity included, CoreMotion's sign) to the core's m/s²
    /// (Android's sign): `−a × 9.80665`. Nil when a component is not finite.
    public static func metersPerSecondSquared(fromG a: Vector3) -> Vector3? {
        let g = standardGravity
        let v = Vector3(x: -a.x * g, y: -a.y * g, z: -a.z * g)
        return isFinite(v) ? v : nil
    }

    /// Whether every component is finite (NaN and infinities never reach the core).
    public static func isFinite(_ v: Vector3) -> Bool {
        v.x.isFinite && v.y.isFinite && v.z.isFinite
    }

    /// A device-motion sample as the core's reading: `accel = −(userAcceleration +
    /// gravity) × 9.80665`, `gyro = rotationRate` (nil when absent or not finite, which
    /// keeps the acceleration). Nil, counted as dropped, for a bad timestamp or a
    /// non-finite acceleration.
    public func reading(from s: DeviceMotionSample) -> MotionReading? {
        let total = Vector3(x: s.userAcceleration.x + s.gravity.x,
                            y: s.userAcceleration.y + s.gravity.y,
                            z: s.userAcceleration.z + s.gravity.z)
        return reading(uptimeSeconds: s.timestamp, accelerationG: total, rotationRate: s.rotationRate)
    }

    /// A raw accelerometer sample (plus an optional paired gyroscope rate) as the core's
    /// reading; nil, counted as dropped, as for `reading(from:)`.
    public func reading(from s: AccelerometerSample, rotationRate: Vector3?) -> MotionReading? {
        reading(uptimeSeconds: s.timestamp, accelerationG: s.acceleration, rotationRate: rotationRate)
    }

    private func reading(uptimeSeconds: TimeInterval, accelerationG: Vector3, rotationRate: Vector3?) -> MotionReading? {
        guard let accel = Self.metersPerSecondSquared(fromG: accelerationG) else {
            countDrop()
            return nil
        }
        guard let ts = epochNs(uptimeSeconds: uptimeSeconds) else { return nil }
        let gyro = rotationRate.flatMap { Self.isFinite($0) ? $0 : nil }
        return MotionReading(timestampNs: ts, accel: accel, gyro: gyro)
    }

    private func countDrop() {
        lock.lock(); defer { lock.unlock() }
        droppedCount += 1
    }
}
