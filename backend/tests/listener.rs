//! The listener's defences over real TCP on loopback: slow-loris clients are cut off
//! at the header deadline while others are served, the connection bound closes what
//! is past it, and TLS: the real phone client pinned to the backend's certificate
//! registers over HTTPS, and refuses a server with any other certificate.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backing, admin_user};
use ring::rand::SystemRandom;
use tacit_mobile_core::client::{Client, ClientConfig};
use tacit_shared::identity::{DeviceSigner, Ed25519Signer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the peer closes (or errors); how long that took.
async fn until_closed(mut c: TcpStream, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit.saturating_sub(t.elapsed()), c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(t.elapsed()),
            Ok(Ok(_)) => {} // e.g. a 408 answer before the close
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_clients_are_cut_off_and_others_served() {
    let dir = common::temp_dir("loris");
    let mut s = common::settings(&Backing::Embedded, &dir);
    s.limits.header_read_timeout_ms = 1_000;
    let (srv, _) = common::spawn_with(s).await;
    // 64 clients that send part of a request head, then a byte every 200 ms.
    let mut slow = Vec::new();
    for _ in 0..64 {
        let mut c = TcpStream::connect(srv.addr).await.unwrap();
        c.write_all(b"POST /v1/uploads HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(c);
    }
    let trickle = tokio::spawn(async move {
        let started = Instant::now();
        let mut alive = slow;
        while started.elapsed() < Duration::from_secs(4) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut next = Vec::new();
            for mut c in alive {
                if c.write_all(b"X").await.is_ok() {
                    next.push(c);
                }
            }
            alive = next;
        }
        alive
    });
    // Meanwhile an honest client is served at once.
    let http = reqwest::Client::new();
    let t = Instant::now();
    let r = http
        .get(format!("{}/healthz", srv.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let served = t.elapsed();
    assert!(served < Duration::from_millis(900), "{served:?}");
    // After four deadlines of trickling, every slow client has been disconnected: its
    // writes fail, or its connection reads as closed.
    let alive = trickle.await.unwrap();
    let still_writing = alive.len();
    for c in alive {
        assert!(
            until_closed(c, Duration::from_secs(3)).await.is_some(),
            "a slow client still connected"
        );
    }
    eprintln!(
        "slow loris: 64 clients trickling headers all cut ({} with failed writes, {still_writing} read as closed); healthz served in {served:?}",
        64 - still_writing
    );
    srv.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_bound_are_closed() {
    let dir = common::temp_dir("bound");
    let mut s = common::settings(&Backing::Embedded, &dir);
    s.limits.max_connections = 4;
    let (srv, _) = common::spawn_with(s).await;
    // Four idle keep-alive connections hold every slot.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = TcpStream::connect(srv.addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(c);
    }
    let extra = TcpStream::connect(srv.addr).await.unwrap();
    assert!(
        until_closed(extra, Duration::from_secs(2)).await.is_some(),
        "the fifth connection is closed at once"
    );
    // A slot frees when a connection ends.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = reqwest::Client::new()
        .get(format!("{}/healthz", srv.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    srv.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_pinned_certificate_and_a_wrong_one_refused() {
    let dir = common::temp_dir("tls");
    let (srv, pair, cert) = common::spawn_tls(&dir).await;
    let url = srv.url();
    assert!(url.starts_with("https://"), "{url}");

    // The administrator trusts the certificate too.
    let admin = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .build()
        .unwrap();
    let user = format!("tls-{}", common::rand_suffix());
    let token = admin_user(&admin, &url, &user).await;

    let phone = |pinned: Option<String>, name: &str| {
        let mut cfg = ClientConfig::new(
            &url,
            pair.public_key().as_bytes(),
            &pair.key_id().to_hex(),
            dir.join(name).to_str().unwrap(),
            &user,
        )
        .unwrap();
        cfg.tls_roots_pem = pinned;
        let signer = Arc::new(Ed25519Signer::generate(&SystemRandom::new()).unwrap().0);
        Client::new(cfg, Some(signer as Arc<dyn DeviceSigner>))
    };

    // Pinned to another certificate (a man in the middle's, or a misissued one): the
    // phone refuses the server and sends nothing.
    let (other, _) = common::self_signed();
    let wrong = phone(Some(other), "wrong").unwrap();
    let err = wrong.register_device(&token).await.unwrap_err().to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // The system's roots do not know a self-signed certificate either.
    let system = phone(None, "system").unwrap();
    assert!(system.register_device(&token).await.is_err());
    // Pinned to the server's certificate: registered over TLS (the token is unused).
    let pinned = phone(Some(cert.clone()), "pinned").unwrap();
    let reg = pinned.register_device(&token).await.unwrap();
    assert_eq!(reg.user_id, user);
    // Plain HTTP to the TLS port gets nothing.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", srv.addr))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    // A pin with nothing in it, or pins over plain HTTP, are configuration errors.
    assert!(phone(Some("not a certificate".into()), "garbage").is_err());
    let mut cfg = ClientConfig::new(
        &format!("http://{}", srv.addr),
        pair.public_key().as_bytes(),
        &pair.key_id().to_hex(),
        dir.join("http").to_str().unwrap(),
        &user,
    )
    .unwrap();
    cfg.tls_roots_pem = Some(cert);
    assert!(Client::new(cfg, None).is_err());
    srv.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tls_settings_errors_are_clear() {
    let dir = common::temp_dir("tlsbad");
    std::fs::write(dir.join("empty.pem"), "").unwrap();
    let e = tacit_backend::serve::server_tls(&dir.join("empty.pem"), &dir.join("empty.pem"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty.pem"), "{e}");
    let e = tacit_backend::serve::server_tls(&dir.join("missing.pem"), &dir.join("k.pem"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.pem"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
