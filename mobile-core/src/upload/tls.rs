//! The client's TLS configuration: the platform's own certificate verification by
//! default, or the app's pinned roots.
//!
//! By default the server's certificate is checked the way the platform checks it
//! (`rustls-platform-verifier`): iOS and macOS through the Security framework, Android
//! through its `X509TrustManager` (after [`android::initialize`]), Windows through its
//! certificate store, Linux through the system's trust store (`/etc/ssl/certs`,
//! `SSL_CERT_FILE`). So an enterprise's or a user's installed CA is honoured exactly as
//! the platform's own networking honours it, and revocation is checked where the
//! platform checks it. Pinned roots replace all of that with the app's own certificates
//! (its backend's CA or self-signed certificate): any other certificate is refused.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls_platform_verifier::BuilderVerifierExt;

/// The TLS configuration of every request the client makes (HTTP/1.1 only, as the
/// client's HTTP stack is built without HTTP/2).
pub(crate) fn client_config(roots_pem: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let mut config = match roots_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| format!("pinned roots: {e}"))?;
                roots.add(cert).map_err(|e| format!("pinned roots: {e}"))?;
            }
            if roots.is_empty() {
                return Err("pinned roots: no PEM certificate found".into());
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            android::check_initialised()?;
            builder
                .with_platform_verifier()
                .map_err(|e| format!("platform certificate verifier: {e}"))?
                .with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Android: the platform verifier calls the platform's `X509TrustManager` through JNI,
/// so it needs the JVM and the app's `Context` once, before the first client is made.
/// The Kotlin layer's `PlatformTrust.initialize(context)` calls the entry point below.
#[cfg(target_os = "android")]
pub mod android {
    use std::sync::atomic::{AtomicBool, Ordering};

    use jni::JNIEnv;
    use jni::objects::{JClass, JObject};

    static INITIALISED: AtomicBool = AtomicBool::new(false);

    /// Without the initialisation the verifier would panic on the first connection:
    /// refuse to build the client instead, saying what to call.
    pub(crate) fn check_initialised() -> Result<(), String> {
        if INITIALISED.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(
                "Android: call dev.tacit.sdk.android.PlatformTrust.initialize(context) \
                 before creating a client (or pin the backend's roots)"
                    .into(),
            )
        }
    }

    /// JNI entry point of `dev.tacit.sdk.android.PlatformTrust.initializeNative(Context)`
    /// (called by `PlatformTrust.initialize`).
    /// Returns whether the verifier is ready.
    #[allow(unsafe_code)]
    #[unsafe(no_mangle)]
    pub extern "system" fn Java_dev_tacit_sdk_android_PlatformTrust_initializeNative(
        mut env: JNIEnv,
        _class: JClass,
        context: JObject,
    ) -> jni::sys::jboolean {
        match rustls_platform_verifier::android::init_with_env(&mut env, context) {
            Ok(()) => {
                INITIALISED.store(true, Ordering::Release);
                jni::sys::JNI_TRUE
            }
            Err(e) => {
                tracing::warn!(error = %e, "platform certificate verifier not initialised");
                jni::sys::JNI_FALSE
            }
        }
    }
}

/// Elsewhere the platform verifier needs no initialisation.
#[cfg(not(target_os = "android"))]
pub(crate) mod android {
    /// Always ready.
    pub(crate) fn check_initialised() -> Result<(), String> {
        Ok(())
    }
}
