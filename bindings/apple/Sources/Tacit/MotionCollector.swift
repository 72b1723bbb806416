// The platform-independent half of motion collection (pure Swift + Foundation: compiled
// and tested on Linux). The CoreMotion adapter (CoreMotionCollector.swift) only copies
// CMDeviceMotion / CMAccelerometerData / CMGyroData values into the sample structs and
// calls this class.
import Foundation
#if canImport(TacitCore)
import TacitCore
#endif

/// Counters of a `MotionCollector`, for the status display and tests.
public struct MotionCollectorStats: Sendable, Equatable {
    /// Readings handed on in batches.
    public var readings: UInt64 = 0
    /// Batches handed on.
    public var batches: UInt64 = 0
    /// Accelerometer readings that carried a paired gyroscope rate.
    public var withGyro: UInt64 = 0
    /// Samples refused by the conversion (bad timestamps, non-finite values).
    public var dropped: UInt64 = 0
}

/// Turns CoreMotion samples into batches of the core's `MotionReading`s.
///
/// Pairs each accelerometer reading with the newest gyroscope reading at most
/// `gyroPairingWindowNs` (20 ms) away (else `gyro` is nil: a stale rotation rate would
/// describe another moment of the gait), batches `batchSize` readings (50 = one second at
/// the requested 50 Hz) and hands each batch to `sink`. The sink is expected to enqueue
/// and return (the `Tacit` facade's `recordMotion` does): this class never calls the core
/// itself, so the CoreMotion callback queue or the main thread is never blocked on it.
/// Thread-safe; deliver samples from one queue (CoreMotion's handler queue) so that the
/// batches reach the sink in time order.
public final class MotionCollector: @unchecked Sendable {
    /// The requested sampling rate (gait resamples to 50 Hz; the core needs >= 10 Hz).
    public static let requestedRateHz = 50.0
    /// `CMMotionManager.deviceMotionUpdateInterval` for `requestedRateHz`.
    public static let updateInterval: TimeInterval = 1.0 / requestedRateHz
    /// Readings per batch by default (one second at 50 Hz).
    public static let defaultBatchSize = 50
    /// A gyroscope reading further than this from the accelerometer reading is not paired.
    public static let gyroPairingWindowNs: Int64 = 20_000_000

    private let conversion: MotionConversion
    private let batchSize: Int
    private let sink: @Sendable ([MotionReading]) -> Void
    private let lock = NSLock()
    private var pending: [MotionReading] = []
    private var latestGyro: (uptimeNs: Int64, rate: Vector3)?
    private var counters = MotionCollectorStats()

    /// Creates a collector that converts with `conversion` and hands batches of
    /// `batchSize` readings (at least 1) to `sink`.
    public init(conversion: MotionConversion = MotionConversion(), batchSize: Int = MotionCollector.defaultBatchSize,
                sink: @escaping @Sendable ([MotionReading]) -> Void) {
        self.conversion = conversion
        self.batchSize = max(1, batchSize)
        self.sink = sink
    }

    /// The counters so far.
    public var stats: MotionCollectorStats {
        lock.lock(); defer { lock.unlock() }
        return counters
    }

    /// Adds a device-motion sample (acceleration and rotation rate of the same instant:
    /// no pairing needed).
    public func add(_ sample: DeviceMotionSample) {
        let reading = conversion.reading(from: sample)
        append(reading)
    }

    /// Adds a raw gyroscope sample; it is paired with the following accelerometer samples
    /// while it is within the pairing window.
    public func add(_ sample: GyroSample) {
        guard let t = Self.uptimeNs(sample.timestamp), MotionConversion.isFinite(sample.rotationRate) else { return }
        lock.lock(); defer { lock.unlock() }
        if let held = latestGyro, held.uptimeNs > t { return }  // keep the newest
        latestGyro = (t, sample.rotationRate)
    }

    /// Adds a raw accelerometer sample, paired with the newest gyroscope sample within
    /// 20 ms (either side: the two streams are delivered independently).
    public func add(_ sample: AccelerometerSample) {
        var gyro: Vector3?
        if let t = Self.uptimeNs(sample.timestamp) {
            lock.lock()
            if let held = latestGyro {
                let (d, overflow) = t.subtractingReportingOverflow(held.uptimeNs)
                if !overflow, d.magnitude <= UInt64(Self.gyroPairingWindowNs) { gyro = held.rate }
            }
            lock.unlock()
        }
        append(conversion.reading(from: sample, rotationRate: gyro))
    }

    /// Hands the readings collected so far to the sink (a partial batch) and forgets the
    /// held gyroscope sample; call it when sensor updates stop.
    public func stop() {
        lock.lock()
        let batch = pending
        pending = []
        latestGyro = nil
        if !batch.isEmpty { count(batch) }
        lock.unlock()
        if !batch.isEmpty { sink(batch) }
    }

    private func append(_ reading: MotionReading?) {
        lock.lock()
        guard let reading else {
            counters.dropped += 1
            lock.unlock()
            return
        }
        pending.append(reading)
        var batch: [MotionReading] = []
        if pending.count >= batchSize {
            batch = pending
            pending = []
            count(batch)
        }
        lock.unlock()
        // Outside the lock: the sink may take its own locks.
        if !batch.isEmpty { sink(batch) }
    }

    private func count(_ batch: [MotionReading]) {
        counters.batches += 1
        counters.readings += UInt64(batch.count)
        counters.withGyro += UInt64(batch.filter { $0.gyro != nil }.count)
    }

    private static func uptimeNs(_ seconds: TimeInterval) -> Int64? {
        guard seconds.isFinite, seconds >= 0, seconds < 9.0e9 else { return nil }
        return Int64((seconds * 1e9).rounded())
    }
}
