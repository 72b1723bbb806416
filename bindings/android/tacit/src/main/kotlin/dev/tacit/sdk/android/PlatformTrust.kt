// Needs the Android SDK: NOT compiled on the Linux build machines (no Android SDK or
// Google Maven there). Read-checked only.
package dev.tacit.sdk.android

import android.content.Context

/**
 * Hands the Rust core's TLS certificate verification to Android's own: without pinned
 * roots, the core checks the backend's certificate with the platform's
 * `X509TrustManager` (rustls-platform-verifier), so the system's CAs, the app's network
 * security configuration and enterprise CAs apply as they do to the app's other traffic.
 *
 * Call [initialize] once, before the first `Tacit.configure` / `TacitClient` (e.g. in
 * `Application.onCreate`); a client made before it without pinned roots fails with
 * `TacitException.InvalidConfig` saying so.
 */
object PlatformTrust {
    init {
        // JNA loads the library for the bindings; the JNI entry point below needs it
        // loaded by the JVM's own loader too.
        System.loadLibrary("tacit_mobile_core")
    }

    /** Gives the verifier the JVM and the application context; returns whether it is ready. */
    fun initialize(context: Context): Boolean = initializeNative(context.applicationContext)

    /** The core's JNI entry point (`Java_dev_tacit_sdk_android_PlatformTrust_initializeNative`). */
    @JvmStatic
    private external fun initializeNative(context: Context): Boolean
}
