// The Tacit SDK as an Android library: the uniffi-generated Kotlin (package
// uniffi.<namespace>) plus libtacit_mobile_core.so for each ABI, both produced by
// ../build-aar.sh into ../generated/, and the platform layer in src/main/kotlin
// (package dev.tacit.sdk: facade, collectors, key stores, upload worker). JNA loads the
// native library at run time.
//
// `./gradlew :tacit:publishToMavenLocal` publishes the release AAR as
// dev.tacit:tacit-android:<version>, the version being the workspace's
// ([workspace.package] version in the repository's Cargo.toml), so the AAR and the
// Rust crates never disagree.
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
    `maven-publish`
}

// [workspace.package] version = "x.y.z" from ../../Cargo.toml (bindings/android is the
// Gradle root). A minimal TOML reading: section headers and `key = "value"` lines, which
// is all that table holds; a missing version fails the build rather than publishing
// a wrong one.
val tacitVersion: String = run {
    val cargoToml = rootProject.layout.projectDirectory.file(rootDir.resolve("../../Cargo.toml").canonicalPath)
    val text = providers.fileContents(cargoToml).asText.orNull
        ?: throw GradleException("cannot read ${cargoToml.asFile} for the workspace version")
    var section = ""
    var found: String? = null
    for (raw in text.lineSequence()) {
        val line = raw.substringBefore('#').trim()
        if (line.startsWith("[")) {
            section = line.removePrefix("[").removeSuffix("]").trim()
            continue
        }
        if (section != "workspace.package") continue
        val m = Regex("^version\\s*=\\s*\"([^\"]+)\"$").find(line)
        if (m != null) {
            found = m.groupValues[1]
            break
        }
    }
    found ?: throw GradleException("no [workspace.package] version in ${cargoToml.asFile}")
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
            kotlin.srcDir("src/main/kotlin")
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

    publishing {
        singleVariant("release") {
            withSourcesJar()
        }
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
    // Async exports (registerDevice, uploadPending, authenticate) are suspend functions,
    // and the facade's public API exposes StateFlow: `api`, so apps get it too.
    api("org.jetbrains.kotlinx:kotlinx-coroutines-core:1.9.0")
    // UploadWorker (CoroutineWorker) and its scheduling with Constraints.
    implementation("androidx.work:work-runtime-ktx:2.10.0")
    // The platform certificate verifier's Kotlin component (PlatformTrust).
    implementation("rustls:rustls-platform-verifier:0.1.1")
}

// The AAR's POM names rustls:rustls-platform-verifier, which no public repository
// serves: it is copied next to our artifact wherever we publish (Maven local here;
// a release copies the same folder into its repository), so that apps resolve it.
val platformVerifierMaven = gradle.extra["platformVerifierMaven"] as File
val publishPlatformVerifierToMavenLocal by tasks.registering(Copy::class) {
    from(platformVerifierMaven) { include("rustls/**") }
    into(File(System.getProperty("user.home"), ".m2/repository"))
}
tasks.matching { it.name == "publishToMavenLocal" }.configureEach {
    dependsOn(publishPlatformVerifierToMavenLocal)
}

publishing {
    publications {
        register<MavenPublication>("release") {
            groupId = "dev.tacit"
            artifactId = "tacit-android"
            version = tacitVersion
            // AGP creates the "release" component only after the project is evaluated.
            afterEvaluate {
                from(components["release"])
            }
            pom {
                name.set("Tacit Android SDK")
                description.set("Tacit behavioural authentication SDK for Android: the Rust core and its Kotlin platform layer")
            }
        }
    }
}
