// Apple-only adapter: needs the CoreMotion framework (iOS SDK). It is NOT compiled on the
// Linux build machines (no Apple SDKs there; `#if canImport(CoreMotion)` leaves the file
// empty; nor on macOS, which has no CMMotionManager), so it has no test here: all logic it
// relies on is in MotionConversion.swift and MotionCollector.swift, which are tested on
// Linux. Check it in Xcode before a release.
#if canImport(CoreMotion) && !os(macOS)
import CoreMotion
import Foundation
#if canImport(TacitCore)
import TacitCore
#endif

/// Feeds CoreMotion's 50 Hz device motion into `Tacit`: copies each `CMDeviceMotion`
/// (or, without device motion, raw `CMAccelerometerData` + `CMGyroData`) into the sample
/// structs and hands them to a `MotionCollector`, which converts (g → m/s², sign, boot
/// time → Unix time), batches one second and enqueues it with `Tacit.recordMotion`.
/// Updates arrive on a private serial queue, never the main thread.
public final class CoreMotionCollector: @unchecked Sendable {
    private let manager: CMMotionManager
    private let collector: MotionCollector
    private let queue: OperationQueue

    /// Creates the collector for `tacit`. Pass the app's one `CMMotionManager` if it has
    /// one (Apple advises a single instance per app).
    public init(tacit: Tacit, manager: CMMotionManager = CMMotionManager(),
                conversion: MotionConversion = MotionConversion()) {
        self.manager = manager
        self.collector = tacit.motionCollector(conversion: conversion)
        let queue = OperationQueue()
        queue.name = "tacit.motion"
        // Serial, so batches reach the collector (and the SDK) in time order.
        queue.maxConcurrentOperationCount = 1
        queue.qualityOfService = .utility
        self.queue = queue
    }

    /// Whether this device has any motion sensor the collector can use.
    public var isAvailable: Bool {
        manager.isDeviceMotionAvailable || manager.isAccelerometerAvailable
    }

    /// The collector's counters.
    public var stats: MotionCollectorStats { collector.stats }

    /// Starts 50 Hz updates. Throws `TacitFailure` (`internal`) when the device has no
    /// accelerometer (nothing to collect).
    public func start() throws {
        let collector = self.collector
        if manager.isDeviceMotionAvailable {
            manager.deviceMotionUpdateInterval = MotionCollector.updateInterval
            manager.startDeviceMotionUpdates(to: queue) { motion, _ in
                // An error ends nothing: CoreMotion keeps delivering when it can.
                guard let m = motion else { return }
                collector.add(DeviceMotionSample(
                    timestamp: m.timestamp,
                    userAcceleration: Vector3(x: m.userAcceleration.x, y: m.userAcceleration.y, z: m.userAcceleration.z),
                    gravity: Vector3(x: m.gravity.x, y: m.gravity.y, z: m.gravity.z),
                    rotationRate: Vector3(x: m.rotationRate.x, y: m.rotationRate.y, z: m.rotationRate.z)))
            }
        } else if manager.isAccelerometerAvailable {
            manager.accelerometerUpdateInterval = MotionCollector.updateInterval
            if manager.isGyroAvailable {
                manager.gyroUpdateInterval = MotionCollector.updateInterval
                manager.startGyroUpdates(to: queue) { data, _ in
                    guard let g = data else { return }
                    collector.add(GyroSample(timestamp: g.timestamp,
                                             rotationRate: Vector3(x: g.rotationRate.x, y: g.rotationRate.y, z: g.rotationRate.z)))
                }
            }
            manager.startAccelerometerUpdates(to: queue) { data, _ in
                guard let a = data else { return }
                collector.add(AccelerometerSample(timestamp: a.timestamp,
                                                  acceleration: Vector3(x: a.acceleration.x, y: a.acceleration.y, z: a.acceleration.z)))
            }
        } else {
            throw TacitFailure(action: .internal, message: "this device has no accelerometer")
        }
    }

    /// Stops the updates and hands the last partial batch on.
    public func stop() {
        manager.stopDeviceMotionUpdates()
        manager.stopAccelerometerUpdates()
        manager.stopGyroUpdates()
        // After the updates already queued, on the same serial queue.
        let collector = self.collector
        queue.addOperation { collector.stop() }
    }
}
#endif
