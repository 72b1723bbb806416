// The small error type of the platform layer: what the app should do, not what went
// wrong inside (pure Swift: compiled and tested on Linux).
import Foundation
#if canImport(TacitCore)
import TacitCore
#endif

/// Why the device must be registered again (each asks for a new enrolment token).
public enum RegistrationProblem: Sendable, Equatable {
    /// `register(enrolmentToken:)` has not succeeded yet.
    case notRegistered
    /// The enrolment token is unknown, used or expired.
    case invalidToken
    /// An administrator revoked the device.
    case revoked
    /// The device key is in use on another phone (clone or restored key): also tell the user.
    case cloned
    /// The backend no longer knows the device (deleted with its user).
    case unknownDevice
}

/// A failure of the SDK, reduced to the action the app should take. The core's error is
/// kept in `underlying` for logs; apps switch on `action`, never on `message`.
public struct TacitFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// What the app should do about a failure.
    public enum Action: Sendable, Equatable {
        /// The configuration or an argument is wrong: fix the call (retrying cannot help).
        case fixInput
        /// Temporary (network, rate limit, clock, local storage): try again later, after
        /// `afterMs` milliseconds when that is known.
        case retryLater(afterMs: UInt64?)
        /// Get a new enrolment token and register again.
        case reRegister(RegistrationProblem)
        /// The device key store failed (locked device, key gone): retry when unlocked,
        /// or re-create the key and register again if it keeps failing.
        case keyStore
        /// A bug or an unexpected answer: report it (message and `underlying`).
        case `internal`
    }

    /// What to do.
    public let action: Action
    /// Human-readable details for logs (never shown as the reason to branch on).
    public let message: String
    /// The core's error, when the failure came from the core.
    public let underlying: TacitError?

    /// Creates a failure.
    public init(action: Action, message: String, underlying: TacitError? = nil) {
        self.action = action
        self.message = message
        self.underlying = underlying
    }

    /// Maps any error thrown by the core or the layer to a failure: `TacitError` case by
    /// case, a `TacitFailure` as itself, `KeyStoreError` as `keyStore`, anything else
    /// (uniffi's internal errors, a cancellation) as `internal`.
    public init(_ error: Error) {
        if let f = error as? TacitFailure {
            self = f
            return
        }
        if let k = error as? KeyStoreError {
            switch k {
            case .Unavailable(let message):
                self.init(action: .keyStore, message: message)
            }
            return
        }
        guard let e = error as? TacitError else {
            self.init(action: .internal, message: String(describing: error))
            return
        }
        switch e {
        case .InvalidConfig(let m), .InvalidInput(let m):
            self.init(action: .fixInput, message: m, underlying: e)
        // The backend's Retry-After, when it gave one.
        case .Network(let m, let after), .RateLimited(let m, let after):
            self.init(action: .retryLater(afterMs: after), message: m, underlying: e)
        // The phone's clock is wrong: a fresh request once it is right.
        case .StaleRequest(let m):
            self.init(action: .retryLater(afterMs: nil), message: m, underlying: e)
        // The relying party's nonce already has a verdict: at once, with a new nonce from
        // the app's server.
        case .NonceUsed(let m):
            self.init(action: .retryLater(afterMs: 0), message: "nonce already used (ask your server for a new one): \(m)",
                      underlying: e)
        // Local storage (a full disk, typically) recovers on its own.
        case .Storage(let m):
            self.init(action: .retryLater(afterMs: nil), message: m, underlying: e)
        case .InvalidEnrolmentToken(let m):
            self.init(action: .reRegister(.invalidToken), message: m, underlying: e)
        case .DeviceRevoked(let m):
            self.init(action: .reRegister(.revoked), message: m, underlying: e)
        case .DeviceCloned(let m):
            self.init(action: .reRegister(.cloned), message: m, underlying: e)
        case .UnknownDevice(let m):
            self.init(action: .reRegister(.unknownDevice), message: m, underlying: e)
        case .NotRegistered(let m):
            self.init(action: .reRegister(.notRegistered), message: m, underlying: e)
        case .KeyStore(let m):
            self.init(action: .keyStore, message: m, underlying: e)
        case .KeyListRefused(let m), .Internal(let m):
            self.init(action: .internal, message: m, underlying: e)
        case .Server(let code, let m):
            self.init(action: .internal, message: code.isEmpty ? m : "\(code): \(m)", underlying: e)
        }
    }

    /// The action and the message.
    public var description: String {
        "TacitFailure(\(action)): \(message)"
    }
}
