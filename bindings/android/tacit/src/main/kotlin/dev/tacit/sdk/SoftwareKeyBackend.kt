// A software P-256 key backend with the JCA: mirrors Android Keystore off Android (JVM
// tests, desktop tools). On a phone use AndroidKeystoreBackend: here the private key is
// a file an attacker with the app's data can copy.
package dev.tacit.sdk

import java.io.File
import java.io.IOException
import java.nio.file.AtomicMoveNotSupportedException
import java.nio.file.FileAlreadyExistsException
import java.nio.file.Files
import java.nio.file.StandardCopyOption
import java.nio.file.attribute.PosixFilePermissions
import java.security.KeyFactory
import java.security.KeyPairGenerator
import java.security.Signature
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import java.security.spec.PKCS8EncodedKeySpec
import java.security.spec.X509EncodedKeySpec

/**
 * [KeyBackend] with JCA `EC`/`secp256r1` keys and `SHA256withECDSA` (DER) signatures,
 * persisted in [dir]: `ALIAS.p8` (PKCS#8 private key) and `ALIAS.pub` (X.509 public key),
 * both created with mode 0600 where the file system supports POSIX permissions.
 * Aliases are 1..64 characters of `[A-Za-z0-9._-]` (they name files).
 */
class SoftwareKeyBackend(private val dir: File) : KeyBackend {
    override fun generate(alias: String): ByteArray {
        checkAlias(alias)
        dir.mkdirs()
        if (!dir.isDirectory) throw IOException("key directory $dir cannot be created")
        val priv = privFile(alias)
        if (priv.exists()) throw IllegalStateException("a key named $alias exists already")
        val pair = KeyPairGenerator.getInstance("EC").apply { initialize(ECGenParameterSpec("secp256r1")) }.generateKeyPair()
        // Public key first: a crash between the two writes leaves no private key, so the
        // next open generates again instead of loading half a key.
        writePrivate(pubFile(alias), pair.public.encoded)
        writePrivate(priv, pair.private.encoded)
        return P256.uncompressedPoint(pair.public as ECPublicKey)
    }

    override fun load(alias: String): ByteArray? {
        checkAlias(alias)
        val priv = privFile(alias)
        val pub = pubFile(alias)
        if (!priv.exists() || !pub.exists()) return null
        val key = KeyFactory.getInstance("EC").generatePublic(X509EncodedKeySpec(pub.readBytes())) as ECPublicKey
        return P256.uncompressedPoint(key)
    }

    override fun sign(alias: String, data: ByteArray): ByteArray {
        checkAlias(alias)
        val priv = privFile(alias)
        if (!priv.exists()) throw IllegalStateException("no key named $alias")
        val key = KeyFactory.getInstance("EC").generatePrivate(PKCS8EncodedKeySpec(priv.readBytes()))
        return Signature.getInstance("SHA256withECDSA").run {
            initSign(key)
            update(data)
            sign()
        }
    }

    override fun delete(alias: String) {
        checkAlias(alias)
        privFile(alias).delete()
        pubFile(alias).delete()
    }

    private fun privFile(alias: String) = File(dir, "$alias.p8")
    private fun pubFile(alias: String) = File(dir, "$alias.pub")

    // Written to a 0600 temporary file, then renamed: never readable by others, never
    // half-written under the final name.
    private fun writePrivate(target: File, bytes: ByteArray) {
        val tmp = File(dir, ".${target.name}.tmp")
        tmp.delete()
        val path = tmp.toPath()
        try {
            Files.createFile(path, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")))
        } catch (_: UnsupportedOperationException) {
            Files.createFile(path) // no POSIX permissions on this file system
        } catch (e: FileAlreadyExistsException) {
            throw IOException("temporary key file $tmp is in use", e)
        }
        Files.write(path, bytes)
        try {
            Files.move(path, target.toPath(), StandardCopyOption.ATOMIC_MOVE)
        } catch (_: AtomicMoveNotSupportedException) {
            Files.move(path, target.toPath(), StandardCopyOption.REPLACE_EXISTING)
        }
    }

    private fun checkAlias(alias: String) {
        require(ALIAS.matches(alias)) { "key alias must be 1..64 characters of [A-Za-z0-9._-] and not start with '.'" }
    }

    private companion object {
        val ALIAS = Regex("[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
    }
}
