// The SDK's errors, shaped by what the app should do next.
package dev.tacit.sdk

import kotlin.coroutines.cancellation.CancellationException
import uniffi.tacit.KeyStoreException
import uniffi.tacit.TacitException

/** Why a [TacitFailure.RetryLater] happened: the app may tell the user differently. */
enum class RetryReason {
    /** The backend could not be reached, or answered 5xx / timed out. */
    NETWORK,

    /** Too many requests from this device. */
    RATE_LIMITED,

    /** The phone's clock is too far from the backend's: retry once it is right. */
    STALE_REQUEST,

    /**
     * The relying party's nonce already has a verdict: ask your server for a new nonce,
     * then authenticate again (no need to wait).
     */
    NONCE_USED,

    /** Local storage (the outbox or key file) failed, e.g. the disk is full. */
    STORAGE,
}

/**
 * Every failure of the SDK, by the action the app should take. Apps `when` over the
 * five cases; [cause] keeps the core's [TacitException] for logs and support.
 */
sealed class TacitFailure(
    /** What went wrong, in words (no biometric content, no typed text). */
    val detail: String,
    cause: Throwable?,
) : Exception(detail, cause) {

    /** The app passed something unusable (configuration, timestamps, nonce): fix the call. */
    class FixInput(detail: String, cause: Throwable? = null) : TacitFailure(detail, cause)

    /**
     * A transient condition: try again later, after [retryAfterMs] when it is known
     * (null: use your own backoff).
     */
    class RetryLater(
        detail: String,
        /** Why (network, rate limit, clock/nonce, storage). */
        val reason: RetryReason,
        /** How long to wait, when the SDK knows; null otherwise. */
        val retryAfterMs: Long? = null,
        cause: Throwable? = null,
    ) : TacitFailure(detail, cause)

    /**
     * The device must be registered (again) with a new enrolment token: it was revoked,
     * cloned, is unknown to the backend, never registered, or the token was refused.
     */
    class Reregister(
        detail: String,
        /** The device key was seen on another phone: also warn the user. */
        val cloned: Boolean = false,
        /** The enrolment token itself was refused (unknown, used or expired). */
        val tokenRefused: Boolean = false,
        cause: Throwable? = null,
    ) : TacitFailure(detail, cause)

    /** The device key store failed (locked device, key invalidated): retry once unlocked. */
    class KeyStore(detail: String, cause: Throwable? = null) : TacitFailure(detail, cause)

    /**
     * Anything else: a refusal the SDK cannot act on, a refused key list, a bug. Report it.
     * @property code the backend's stable error code where there was one (a `Server` refusal).
     */
    class Internal(detail: String, val code: String? = null, cause: Throwable? = null) : TacitFailure(detail, cause)

    override fun toString(): String = "TacitFailure.${this::class.simpleName}: $detail"

    /** Mapping from the core's errors. */
    companion object {
        /**
         * The failure for [e]: every [TacitException] case, [KeyStoreException], and
         * anything else as [Internal]. A [CancellationException] is not a failure: it is
         * rethrown so that coroutine cancellation keeps working.
         */
        fun from(e: Throwable): TacitFailure = when (e) {
            is CancellationException -> throw e
            is TacitFailure -> e
            is TacitException -> fromCore(e)
            is KeyStoreException.Unavailable -> KeyStore("key store unavailable: ${e.detail}", e)
            else -> Internal("${e::class.java.name}: ${e.message ?: "no message"}", cause = e)
        }

        private fun fromCore(e: TacitException): TacitFailure = when (e) {
            is TacitException.InvalidConfig -> FixInput("invalid configuration: ${e.detail}", e)
            is TacitException.InvalidInput -> FixInput("invalid input: ${e.detail}", e)
            is TacitException.Storage -> RetryLater("local storage failed: ${e.detail}", RetryReason.STORAGE, cause = e)
            is TacitException.Network ->
                RetryLater("backend unreachable: ${e.detail}", RetryReason.NETWORK, e.retryAfterMs?.toMillis(), e)
            is TacitException.RateLimited ->
                RetryLater("rate limited: ${e.detail}", RetryReason.RATE_LIMITED, e.retryAfterMs?.toMillis(), e)
            is TacitException.StaleRequest ->
                RetryLater("stale request (the phone's clock): ${e.detail}", RetryReason.STALE_REQUEST, cause = e)
            is TacitException.NonceUsed ->
                RetryLater("nonce already used: ${e.detail}", RetryReason.NONCE_USED, 0L, e)
            is TacitException.InvalidEnrolmentToken ->
                Reregister("enrolment token refused: ${e.detail}", tokenRefused = true, cause = e)
            is TacitException.DeviceRevoked -> Reregister("device revoked: ${e.detail}", cause = e)
            is TacitException.DeviceCloned -> Reregister("device key used on another phone: ${e.detail}", cloned = true, cause = e)
            is TacitException.UnknownDevice -> Reregister("device unknown to the backend: ${e.detail}", cause = e)
            is TacitException.NotRegistered -> Reregister("device not registered: ${e.detail}", cause = e)
            is TacitException.KeyStore -> KeyStore("key store failed: ${e.detail}", e)
            is TacitException.KeyListRefused -> Internal("backend key list refused: ${e.detail}", cause = e)
            is TacitException.Server -> Internal("backend refused: ${e.detail}", code = e.code.ifEmpty { null }, cause = e)
            is TacitException.Internal -> Internal("internal error: ${e.detail}", cause = e)
        }
    }
}

/** A core `Retry-After` in milliseconds as a Long (saturating; the core caps it anyway). */
private fun ULong.toMillis(): Long = if (this > Long.MAX_VALUE.toULong()) Long.MAX_VALUE else this.toLong()

/**
 * Runs [block], turning any exception into a [TacitFailure] (cancellation passes through;
 * JVM Errors such as OutOfMemoryError are not caught).
 */
internal inline fun <T> mapFailures(block: () -> T): T = try {
    block()
} catch (e: Exception) {
    throw TacitFailure.from(e)
}
