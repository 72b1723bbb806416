// The Tacit SDK as an Android library: the uniffi-generated Kotlin (package
// uniffi.<namespace>) plus libtacit_mobile_core.so for each ABI, both produced by
// ../build-aar.sh into ../generated/. JNA loads the native library at run time.
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "dev.tacit.sdk"
    compileSdk = 35

    defaultConfig {
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets {
        getByName("main") {
            java.srcDir("../generated/kotlin")
            jniLibs.srcDir("../generated/jniLibs")
        }
    }

    buildTypes {
        release {
            // The library itself is not minified; apps apply consumer-rules.pro.
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    kotlinOptions {
        jvmTarget = "17"
    }

    packaging {
        // The native libraries are already stripped by the release-mobile profile.
        jniLibs.keepDebugSymbols += "**/libtacit_mobile_core.so"
    }
}

dependencies {
    // uniffi's Kotlin calls the native library through JNA (the @aar variant carries
    // libjnidispatch.so for every Android ABI).
    implementation("net.java.dev.jna:jna:5.15.0@aar")
    // Async exports (registerDevice, uploadPending, authenticate) are suspend functions.
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-core:1.9.0")
}
