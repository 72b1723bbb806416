// swift-tools-version:5.9
// Tacit SDK for iOS, version 0.1.0: the `[workspace.package] version` of
// the repository's Cargo.toml, which the Rust core in the XCFramework is built from.
//
// Build the binary part first, on macOS with Xcode (see bindings/README.md, "Swift
// package"): `bindings/apple/build-xcframework.sh` makes build/TacitMobileCore.xcframework
// (static library + C header + module map of the module `tacitFFI`) and copies the
// generated bindings to Sources/TacitCore/tacit.swift. Neither is checked in.
import PackageDescription

let package = Package(
    name: "Tacit",
    // iOS only: the XCFramework holds device and simulator slices of iOS (a macOS slice
    // would need its own target in build-xcframework.sh).
    platforms: [.iOS(.v15)],
    products: [
        // What apps depend on: the platform layer (facade, collectors, scheduler, key store).
        .library(name: "Tacit", targets: ["Tacit"]),
    ],
    targets: [
        // The Rust core (libtacit_mobile_core.a per platform) and its C interface, module
        // `tacitFFI`, which the generated Swift imports.
        .binaryTarget(name: "TacitMobileCoreFFI", path: "build/TacitMobileCore.xcframework"),
        // The uniffi-generated Swift API of the core (TacitClient, TacitError, ...).
        .target(name: "TacitCore", dependencies: ["TacitMobileCoreFFI"], path: "Sources/TacitCore",
                exclude: ["README.md"]),
        // The platform layer: pure Swift parts plus the CoreMotion, BackgroundTasks,
        // CryptoKit/Keychain and UIKit adapters.
        .target(name: "Tacit", dependencies: ["TacitCore"], path: "Sources/Tacit"),
    ]
)
