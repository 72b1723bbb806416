// Apple-only adapter: needs CryptoKit and the Security framework (Keychain). It is NOT
// compiled on the Linux build machines (no Apple SDKs there; `#if canImport(CryptoKit)`
// leaves the file empty), so it has no test here: the contract it plugs into
// (PlatformKeyStore: create once, same key on reopen, formats, error mapping) is tested on
// Linux with fake backends. Check it on a device (the Secure Enclave is absent in the
// simulator) before a release.
#if canImport(CryptoKit) && canImport(Security)
import CryptoKit
import Foundation
import Security
#if canImport(TacitCore)
import TacitCore
#endif

/// Keychain items of the key backends: a generic password per alias. Accessible after
/// the first unlock (background uploads sign while the phone is locked) and only on this
/// device (never in a backup: a key restored on another phone would make the backend
/// flag the device as cloned).
private struct KeychainBlobs: Sendable {
    let service: String

    private func query(_ alias: String) -> [String: Any] {
        var q: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: alias,
        ]
        #if os(macOS)
        q[kSecUseDataProtectionKeychain as String] = true
        #endif
        return q
    }

    func read(_ alias: String) throws -> Data? {
        var q = query(alias)
        q[kSecReturnData as String] = true
        q[kSecMatchLimit as String] = kSecMatchLimitOne
        var item: CFTypeRef?
        let status = SecItemCopyMatching(q as CFDictionary, &item)
        if status == errSecItemNotFound { return nil }
        guard status == errSecSuccess, let data = item as? Data else {
            throw KeyBackendError("Keychain read failed (OSStatus \(status))")
        }
        return data
    }

    func store(_ alias: String, _ data: Data) throws {
        var q = query(alias)
        q[kSecValueData as String] = data
        q[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
        let status = SecItemAdd(q as CFDictionary, nil)
        guard status == errSecSuccess else { throw KeyBackendError("Keychain write failed (OSStatus \(status))") }
    }

    func delete(_ alias: String) throws {
        let status = SecItemDelete(query(alias) as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else {
            throw KeyBackendError("Keychain delete failed (OSStatus \(status))")
        }
    }
}

/// P-256 keys in the Secure Enclave (`SecureEnclave.P256.Signing.PrivateKey`): the
/// private key never leaves the enclave; the Keychain holds only its enclave-wrapped
/// blob (`dataRepresentation`), usable by this device's enclave alone. Public keys are
/// 65-byte uncompressed points (`x963Representation`), signatures ECDSA-SHA256 in DER.
/// Use it through `PlatformKeyStore`.
public struct SecureEnclaveKeyBackend: KeyBackend {
    private let blobs: KeychainBlobs

    /// Creates the backend; `service` names the Keychain items.
    public init(service: String = "tacit.device-keys") {
        self.blobs = KeychainBlobs(service: service)
    }

    /// Whether this device has a Secure Enclave (false in the simulator).
    public static var isAvailable: Bool { SecureEnclave.isAvailable }

    /// ECDSA P-256 with SHA-256.
    public var algorithm: KeyAlgorithm { .ecdsaP256Sha256 }

    /// Creates a key in the enclave and stores its blob under `alias`.
    public func generate(alias: String) throws -> Data {
        guard SecureEnclave.isAvailable else { throw KeyBackendError("this device has no Secure Enclave") }
        var error: Unmanaged<CFError>?
        guard let access = SecAccessControlCreateWithFlags(
            kCFAllocatorDefault, kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly, .privateKeyUsage, &error)
        else {
            let cause = error.map { String(describing: $0.takeRetainedValue()) } ?? "unknown"
            throw KeyBackendError("access control refused: \(cause)")
        }
        let key = try SecureEnclave.P256.Signing.PrivateKey(accessControl: access)
        try blobs.store(alias, key.dataRepresentation)
        return key.publicKey.x963Representation
    }

    /// The public key of the key stored under `alias`, nil when there is none.
    public func load(alias: String) throws -> Data? {
        guard let blob = try blobs.read(alias) else { return nil }
        return try SecureEnclave.P256.Signing.PrivateKey(dataRepresentation: blob).publicKey.x963Representation
    }

    /// Signs `data` (SHA-256 inside CryptoKit), DER-encoded.
    public func sign(alias: String, data: Data) throws -> Data {
        guard let blob = try blobs.read(alias) else { throw KeyBackendError("no key under \(alias)") }
        let key = try SecureEnclave.P256.Signing.PrivateKey(dataRepresentation: blob)
        return try key.signature(for: data).derRepresentation
    }

    /// Deletes the blob (the enclave key becomes unusable).
    public func delete(alias: String) throws {
        try blobs.delete(alias)
    }
}

/// P-256 keys in software (CryptoKit's `P256.Signing.PrivateKey`, the raw private key in
/// the Keychain, this device only): the fallback for the simulator and devices without a
/// Secure Enclave, with the same formats as `SecureEnclaveKeyBackend`.
public struct SoftwareP256KeyBackend: KeyBackend {
    private let blobs: KeychainBlobs

    /// Creates the backend; `service` names the Keychain items.
    public init(service: String = "tacit.device-keys.software") {
        self.blobs = KeychainBlobs(service: service)
    }

    /// ECDSA P-256 with SHA-256.
    public var algorithm: KeyAlgorithm { .ecdsaP256Sha256 }

    /// Creates a key and stores it under `alias`.
    public func generate(alias: String) throws -> Data {
        let key = P256.Signing.PrivateKey()
        try blobs.store(alias, key.rawRepresentation)
        return key.publicKey.x963Representation
    }

    /// The public key under `alias`, nil when there is none.
    public func load(alias: String) throws -> Data? {
        guard let raw = try blobs.read(alias) else { return nil }
        return try P256.Signing.PrivateKey(rawRepresentation: raw).publicKey.x963Representation
    }

    /// Signs `data` (SHA-256 inside CryptoKit), DER-encoded.
    public func sign(alias: String, data: Data) throws -> Data {
        guard let raw = try blobs.read(alias) else { throw KeyBackendError("no key under \(alias)") }
        return try P256.Signing.PrivateKey(rawRepresentation: raw).signature(for: data).derRepresentation
    }

    /// Deletes the key.
    public func delete(alias: String) throws {
        try blobs.delete(alias)
    }
}

extension PlatformKeyStore {
    /// The Secure Enclave key store where the device has one, else the software P-256
    /// one (simulator).
    public static func secureEnclaveOrSoftware(alias: String = PlatformKeyStore.defaultAlias) -> PlatformKeyStore {
        SecureEnclaveKeyBackend.isAvailable
            ? PlatformKeyStore(alias: alias, backend: SecureEnclaveKeyBackend())
            : PlatformKeyStore(alias: alias, backend: SoftwareP256KeyBackend())
    }
}
#endif
