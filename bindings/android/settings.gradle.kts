// Gradle build of the Tacit Android library (AAR). Run bindings/android/build-aar.sh,
// which builds the native libraries with cargo-ndk and generates the Kotlin bindings
// into bindings/android/generated/ before calling Gradle.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

// The Kotlin half of rustls-platform-verifier (the core's TLS verification through
// Android's X509TrustManager, dev.tacit.sdk.android.PlatformTrust) ships inside its Rust
// crate as a local Maven repository: found with `cargo metadata`, as the crate's
// documentation prescribes.
val platformVerifierMaven: File = run {
    val out = providers.exec {
        workingDir = rootDir.resolve("../..")
        commandLine("cargo", "metadata", "--format-version", "1", "--filter-platform", "aarch64-linux-android",
            "--manifest-path", "mobile-core/Cargo.toml")
    }.standardOutput.asText.get()
    val manifest = Regex("\"manifest_path\":\"([^\"]*rustls-platform-verifier-android[^\"]*Cargo\\.toml)\"")
        .find(out)?.groupValues?.get(1)
        ?: throw GradleException("rustls-platform-verifier-android not found by cargo metadata")
    File(manifest).parentFile.resolve("maven")
}
// For the library module: it publishes this repository's artifact next to its own AAR.
gradle.extra["platformVerifierMaven"] = platformVerifierMaven

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
        maven { url = uri(platformVerifierMaven) }
    }
}

rootProject.name = "tacit-android"
include(":tacit")
