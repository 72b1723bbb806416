//! The phone client trusts what the platform trusts: without pinned roots a server
//! certificate is verified against the system's trust store, so a CA that the
//! device's owner or an enterprise installed there is honoured (on Linux the store is
//! `/etc/ssl/certs`, or `SSL_CERT_FILE` when set, as for every other program).
//!
//! Its own test binary: it sets `SSL_CERT_FILE` for the whole process.

mod common;

use std::sync::Arc;

use common::admin_user;
use ring::rand::SystemRandom;
use tacit_mobile_core::client::{Client, ClientConfig};
use tacit_shared::identity::{DeviceSigner, Ed25519Signer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_in_the_system_trust_store_is_trusted_without_pinning() {
    let dir = common::temp_dir("sysroots");
    let (srv, pair, cert) = common::spawn_tls(&dir).await;
    let url = srv.url();
    let admin = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .build()
        .unwrap();
    let user = format!("sysroots-{}", common::rand_suffix());
    let phone = |name: &str| {
        let cfg = ClientConfig::new(
            &url,
            pair.public_key().as_bytes(),
            &pair.key_id().to_hex(),
            dir.join(name).to_str().unwrap(),
            &user,
        )
        .unwrap();
        let signer = Arc::new(Ed25519Signer::generate(&SystemRandom::new()).unwrap().0);
        Client::new(cfg, Some(signer as Arc<dyn DeviceSigner>)).unwrap()
    };

    // The system's store does not hold the server's certificate: refused.
    let token = admin_user(&admin, &url, &user).await;
    let err = phone("before")
        .register_device(&token)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // The certificate is installed in the system's store (here: the file every TLS
    // program on Linux reads when `SSL_CERT_FILE` names it), and a new client, with no
    // pinning, trusts it.
    let store = dir.join("system-store.pem");
    std::fs::write(&store, &cert).unwrap();
    // SAFETY: no other thread of this test binary reads the environment now (the one
    // test's runtime is idle between requests; the server does not read SSL_CERT_FILE).
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("SSL_CERT_FILE", &store)
    };
    let reg = phone("after").register_device(&token).await.unwrap();
    assert_eq!(reg.user_id, user);
    srv.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
