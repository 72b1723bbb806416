// NEEDS THE ANDROID SDK: this adapter uses android.* / androidx.* APIs and is NOT compiled
// on the Linux build machines (no Android SDK or Google Maven there); it is built only by
// bindings/android/build-aar.sh. Keep it thin: the logic it calls lives in the pure
// package dev.tacit.sdk, which bindings/tests/kotlin-platform tests on the JVM.
package dev.tacit.sdk.android

import android.content.Context
import android.net.ConnectivityManager
import android.net.Network
import android.net.NetworkCapabilities
import android.os.BatteryManager
import dev.tacit.sdk.Tacit
import uniffi.tacit.NetworkState

/** Connectivity and battery as the scheduler and the core want them. */
object AndroidConditions {
    /** The current network: online (validated internet) and unmetered. */
    fun network(context: Context): NetworkState {
        val cm = context.getSystemService(ConnectivityManager::class.java) ?: return NetworkState(false, false)
        val caps = cm.getNetworkCapabilities(cm.activeNetwork) ?: return NetworkState(false, false)
        return capsToState(caps)
    }

    /** Whether the battery is low (at most 15 % and not charging), like WorkManager's BATTERY_LOW. */
    fun batteryLow(context: Context): Boolean {
        val bm = context.getSystemService(BatteryManager::class.java) ?: return false
        val level = bm.getIntProperty(BatteryManager.BATTERY_PROPERTY_CAPACITY)
        return level in 0..15 && !bm.isCharging
    }

    /**
     * Keeps [tacit]'s network state current (the core skips uploads offline and, with
     * `wifiOnly`, on metered networks). Returns the callback, to unregister with
     * `ConnectivityManager.unregisterNetworkCallback`.
     */
    fun follow(context: Context, tacit: Tacit): ConnectivityManager.NetworkCallback? {
        val cm = context.getSystemService(ConnectivityManager::class.java) ?: return null
        tacit.setNetworkState(network(context))
        val callback = object : ConnectivityManager.NetworkCallback() {
            override fun onCapabilitiesChanged(network: Network, caps: NetworkCapabilities) {
                tacit.setNetworkState(capsToState(caps))
            }

            override fun onLost(network: Network) {
                tacit.setNetworkState(NetworkState(online = false, unmetered = false))
            }
        }
        cm.registerDefaultNetworkCallback(callback)
        return callback
    }

    private fun capsToState(caps: NetworkCapabilities) = NetworkState(
        online = caps.hasCapability(NetworkCapabilities.NET_CAPABILITY_INTERNET),
        unmetered = caps.hasCapability(NetworkCapabilities.NET_CAPABILITY_NOT_METERED),
    )
}
