// The device key contract over a small backend interface (pure Swift + Foundation:
// compiled and tested on Linux with fake backends). The Secure Enclave backend
// (SecureEnclaveKeyBackend.swift) needs CryptoKit and the Keychain.
import Foundation
#if canImport(TacitCore)
import TacitCore
#endif

/// A failure of a key backend, with its cause for the logs.
public struct KeyBackendError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What failed, in words (never key material).
    public let message: String

    /// Creates an error.
    public init(_ message: String) {
        self.message = message
    }

    /// The message.
    public var description: String { message }
}

/// Where device keys live (Secure Enclave + Keychain on iOS; a fake in tests). Keys are
/// named by alias; the private key never leaves the backend.
public protocol KeyBackend: Sendable {
    /// The algorithm of the backend's keys (`.ecdsaP256Sha256` for the Secure Enclave).
    var algorithm: KeyAlgorithm { get }
    /// Creates a key under `alias` (replacing none: call only when `load` found none) and
    /// returns its public key.
    func generate(alias: String) throws -> Data
    /// The public key under `alias`, nil when there is none.
    func load(alias: String) throws -> Data?
    /// Signs `data` with the key under `alias` (P-256: ECDSA over SHA-256, DER).
    func sign(alias: String, data: Data) throws -> Data
    /// Deletes the key under `alias` (no error when there is none).
    func delete(alias: String) throws
}

/// Checks of the key formats the core accepts.
public enum KeyFormat {
    /// Whether `key` is a 65-byte uncompressed P-256 point (0x04 ‖ x ‖ y).
    public static func isUncompressedP256Point(_ key: Data) -> Bool {
        key.count == 65 && key.first == 0x04
    }

    /// Whether `sig` is shaped like an ASN.1 DER ECDSA signature for P-256:
    /// `SEQUENCE { INTEGER r, INTEGER s }`, each 1...33 bytes, lengths consistent.
    public static func isDERSignature(_ sig: Data) -> Bool {
        let b = [UInt8](sig)
        guard b.count >= 8, b.count <= 72, b[0] == 0x30, Int(b[1]) == b.count - 2 else { return false }
        var i = 2
        for _ in 0..<2 {
            guard i + 2 <= b.count, b[i] == 0x02 else { return false }
            let len = Int(b[i + 1])
            guard len >= 1, len <= 33, i + 2 + len <= b.count else { return false }
            i += 2 + len
        }
        return i == b.count
    }

    /// Whether `key` is a public key of `algorithm` in the core's format.
    public static func isPublicKey(_ key: Data, for algorithm: KeyAlgorithm) -> Bool {
        switch algorithm {
        case .ecdsaP256Sha256: return isUncompressedP256Point(key)
        case .ed25519: return key.count == 32
        }
    }

    /// Whether `sig` is a signature of `algorithm` in the core's format.
    public static func isSignature(_ sig: Data, for algorithm: KeyAlgorithm) -> Bool {
        switch algorithm {
        case .ecdsaP256Sha256: return isDERSignature(sig)
        case .ed25519: return sig.count == 64
        }
    }
}

/// The core's `DeviceKeyStore` over a `KeyBackend`: creates the key on first use, finds
/// the same key again on every later launch (same alias), checks what the backend
/// returns against the core's formats (65-byte uncompressed P-256 points and DER
/// signatures), and reports every backend failure as `KeyStoreError.Unavailable` with
/// its cause (the core then fails with `TacitError.KeyStore`). Thread-safe: creation is
/// serialised so two first uses cannot create two keys.
public final class PlatformKeyStore: DeviceKeyStore, @unchecked Sendable {
    /// The alias used when none is given.
    public static let defaultAlias = "tacit.device-key"

    /// The key's alias in the backend.
    public let alias: String
    private let backend: KeyBackend
    private let lock = NSLock()
    private var cachedPublicKey: Data?

    /// Creates a key store for the key `alias` in `backend`.
    public init(alias: String = PlatformKeyStore.defaultAlias, backend: KeyBackend) {
        self.alias = alias
        self.backend = backend
    }

    /// The backend's algorithm.
    public func algorithm() -> KeyAlgorithm {
        backend.algorithm
    }

    /// The public key, creating the key on first use.
    public func publicKey() throws -> Data {
        lock.lock(); defer { lock.unlock() }
        return try ensureKeyLocked()
    }

    /// Signs `message`, creating the key on first use.
    public func sign(message: Data) throws -> Data {
        lock.lock()
        do {
            _ = try ensureKeyLocked()
        } catch {
            lock.unlock()
            throw error
        }
        lock.unlock()
        let sig: Data
        do {
            sig = try backend.sign(alias: alias, data: message)
        } catch {
            throw Self.unavailable("signing with \(alias) failed", error)
        }
        guard KeyFormat.isSignature(sig, for: backend.algorithm) else {
            throw KeyStoreError.Unavailable(message: "key backend returned a malformed \(backend.algorithm) signature (\(sig.count) bytes)")
        }
        return sig
    }

    /// Deletes the key (the device must then register again with a new one).
    public func deleteKey() throws {
        lock.lock(); defer { lock.unlock() }
        cachedPublicKey = nil
        do {
            try backend.delete(alias: alias)
        } catch {
            throw Self.unavailable("deleting \(alias) failed", error)
        }
    }

    private func ensureKeyLocked() throws -> Data {
        if let key = cachedPublicKey { return key }
        let key: Data
        do {
            key = try backend.load(alias: alias) ?? backend.generate(alias: alias)
        } catch {
            throw Self.unavailable("key \(alias) unavailable", error)
        }
        guard KeyFormat.isPublicKey(key, for: backend.algorithm) else {
            throw KeyStoreError.Unavailable(message: "key backend returned a malformed \(backend.algorithm) public key (\(key.count) bytes)")
        }
        cachedPublicKey = key
        return key
    }

    private static func unavailable(_ what: String, _ cause: Error) -> KeyStoreError {
        if case KeyStoreError.Unavailable(let m) = cause { return .Unavailable(message: "\(what): \(m)") }
        return .Unavailable(message: "\(what): \(cause)")
    }
}
