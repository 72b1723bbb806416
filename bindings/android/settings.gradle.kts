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

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "tacit-android"
include(":tacit")
