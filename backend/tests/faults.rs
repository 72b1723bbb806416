//! Fault injection with the real phone client: PostgreSQL, then S3, becomes unreachable
//! (a cut TCP path between the gateway and it: existing connections die, new ones are
//! refused) while a phone uploads, and comes back. While it is down the gateway answers
//! 503 with `Retry-After` and stores nothing; the phone keeps every envelope; once it is
//! back the phone's retries store each envelope exactly once: acknowledged = stored,
//! lost = 0, duplicated = 0. Needs PostgreSQL and S3 (skipped without them, never in CI).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Backing, admin_user, backings, typing, walking};
use ring::rand::SystemRandom;
use tacit_mobile_core::client::{Client, ClientConfig};
use tacit_mobile_core::queue::{Outbox, OutboxConfig};
use tacit_shared::api::b64_encode;
use tacit_shared::hpke::RecipientKeyPair;
use tacit_shared::identity::{DeviceSigner, Ed25519Signer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP path that can be cut: forwards to `target` while up; when cut, its open
/// connections are dropped and new ones closed at once.
struct Cut {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Cut {
    async fn to(target: SocketAddr) -> Cut {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up2, open2) = (up.clone(), open.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the peer sees the connection closed
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                open2.lock().unwrap().push(task);
            }
        });
        Cut {
            addr,
            up,
            open,
            accept,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for t in self.open.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// `host:port` of a URL such as `postgres://u@127.0.0.1:5432/db` or `http://h:p`.
fn host_port(url: &str) -> (String, SocketAddr) {
    let rest = url.split_once("://").unwrap().1;
    let authority = rest.split('/').next().unwrap();
    let hp = authority.rsplit('@').next().unwrap();
    let addr = std::net::ToSocketAddrs::to_socket_addrs(hp)
        .unwrap()
        .next()
        .unwrap();
    (hp.to_string(), addr)
}

/// A real phone client of the gateway at `url` with backend key `key`, its data in
/// `dir`, configured further by `tune`.
fn phone(
    url: &str,
    key: &RecipientKeyPair,
    dir: &std::path::Path,
    user: &str,
    signer: Arc<Ed25519Signer>,
    tune: impl FnOnce(&mut ClientConfig),
) -> Client {
    let mut cfg = ClientConfig::new(
        url,
        key.public_key().as_bytes(),
        &key.key_id().to_hex(),
        dir.to_str().unwrap(),
        user,
    )
    .unwrap();
    tune(&mut cfg);
    Client::new(cfg, Some(signer as Arc<dyn DeviceSigner>)).unwrap()
}

fn new_signer() -> Arc<Ed25519Signer> {
    Arc::new(Ed25519Signer::generate(&SystemRandom::new()).unwrap().0)
}

#[derive(Debug, Clone, Copy)]
enum Down {
    Database,
    Objects,
}

async fn outage(backing: &Backing, down: Down) {
    let Backing::PostgresS3 {
        database_url,
        s3_endpoint,
        ..
    } = backing
    else {
        unreachable!()
    };
    let (db_hp, db_addr) = host_port(database_url);
    let (s3_hp, s3_addr) = host_port(s3_endpoint);
    let db_cut = Cut::to(db_addr).await;
    let s3_cut = Cut::to(s3_addr).await;
    let cut = match down {
        Down::Database => &db_cut,
        Down::Objects => &s3_cut,
    };

    let dir = common::temp_dir("faults");
    common::ensure_bucket(backing).await;
    let mut s = common::settings(backing, &dir);
    s.database_url = Some(
        database_url
            .replacen(&db_hp, &db_cut.addr.to_string(), 1)
            .into(),
    );
    s.s3.endpoint = Some(s3_endpoint.replacen(&s3_hp, &s3_cut.addr.to_string(), 1));
    let (srv, pair) = common::spawn_with(s).await;
    let url = srv.url();
    let http = reqwest::Client::new();

    // A real phone with a short retry budget, so that an upload during the outage
    // gives up (keeping its envelopes) instead of waiting it out.
    let user = format!("faults-{}", common::rand_suffix());
    let token = admin_user(&http, &url, &user).await;
    let phone_dir = dir.join("phone");
    let client = phone(&url, &pair, &phone_dir, &user, new_signer(), |cfg| {
        cfg.upload.max_attempts = 2;
        cfg.upload.base_backoff = Duration::from_millis(100);
        cfg.upload.max_backoff = Duration::from_secs(1);
    });
    client.register_device(&token).await.unwrap();
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    // Six minutes of use, sealed minute by minute: six envelopes or more.
    let mut created = 0;
    for minute in 0..6i64 {
        let t0 = now_ns - (7 - minute) * 60_000_000_000;
        client.record_motion(&walking(50.0, t0)).unwrap();
        client.record_keys(&typing(100, t0)).unwrap();
        created += u64::from(client.seal().unwrap().envelopes);
    }
    assert!(created >= 6, "{created}");

    // Down: 503 + Retry-After for a raw upload, nothing stored, nothing lost.
    cut.cut();
    let outbox = Outbox::open(&phone_dir, OutboxConfig::default()).unwrap();
    let one = outbox.peek_oldest(1).unwrap().remove(0).bytes;
    let started = Instant::now();
    let r = http
        .post(format!("{url}/v1/uploads"))
        .json(&serde_json::json!({ "envelopes": [b64_encode(&one)] }))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(r.status(), 503, "{down:?}: {}", r.text().await.unwrap());
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    let up = client.upload_pending().await.unwrap();
    assert_eq!(
        up.report.stored + up.report.duplicate,
        0,
        "{down:?}: {up:?}"
    );
    assert_eq!(
        up.remaining, created,
        "{down:?}: the phone keeps every envelope"
    );
    assert!(up.report.error.is_some(), "{up:?}");
    eprintln!(
        "{down:?} down: 503 after {waited:?} (Retry-After {retry_after} s); phone keeps {created}"
    );

    // Back: the phone's retries store every envelope exactly once.
    cut.restore();
    let back = Instant::now();
    let mut acknowledged = 0;
    loop {
        let up = client.upload_pending().await.unwrap();
        acknowledged += up.report.stored + up.report.duplicate;
        assert_eq!(up.report.rejected, 0, "{up:?}");
        if up.remaining == 0 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(60),
            "{down:?}: not drained a minute after recovery: {up:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stored = srv.state.store.count_envelopes(&user).await.unwrap();
    assert_eq!(acknowledged, created, "{down:?}");
    assert_eq!(
        stored, created,
        "{down:?}: acknowledged = stored, none twice"
    );
    assert_eq!(client.status().unwrap().acknowledged_total, created);
    eprintln!(
        "{down:?} back: {created} created = acknowledged = stored, drained {:?} after recovery",
        back.elapsed()
    );
    srv.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_and_object_store_down_and_back_lose_nothing() {
    let Some(backing) = backings()
        .into_iter()
        .find(|b| matches!(b, Backing::PostgresS3 { .. }))
    else {
        eprintln!("SKIP: fault injection needs DATABASE_URL and S3_ENDPOINT");
        return;
    };
    for down in [Down::Database, Down::Objects] {
        outage(&backing, down).await;
    }
}

/// A tmpfs of `size` mounted on `dir` for the test's lifetime (root only; `None` where mounting is not allowed).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// The phone's disk fills up: sealing fails with a clear "disk is full" error and the
/// feature records stay in memory; once space is back they are sealed and uploaded,
/// nothing lost, nothing twice. A real full file system (a 2 MiB tmpfs, filled with a
/// file), so root is needed; skipped with a message otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_disk_full_keeps_records_until_there_is_room() {
    let dir = common::temp_dir("diskfull");
    let Some(fs) = Tmpfs::mount(&dir.join("phone"), "2m") else {
        eprintln!("SKIP: a tmpfs cannot be mounted here (needs root and CAP_SYS_ADMIN)");
        return;
    };
    let ts = common::start(&Backing::Embedded, "diskfull-srv").await;
    let url = ts.server.url();
    let http = reqwest::Client::new();
    let user = format!("diskfull-{}", common::rand_suffix());
    let token = admin_user(&http, &url, &user).await;
    let client = phone(&url, &ts.key, &fs.0, &user, new_signer(), |_| {});
    client.register_device(&token).await.unwrap();

    // Fill the file system to the last block.
    let filler = fs.0.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).and_then(|_| f.sync_all()).is_ok() {}
        let small = [0u8; 512];
        while f.write_all(&small).and_then(|_| f.sync_all()).is_ok() {}
    }
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let mut full_errors = 0;
    for minute in 0..4i64 {
        let t0 = now_ns - (5 - minute) * 60_000_000_000;
        // Recording itself works (features are computed in memory); sealing cannot.
        let _ = client.record_motion(&walking(50.0, t0));
        let _ = client.record_keys(&typing(100, t0));
        match client.seal() {
            Ok(s) => assert_eq!(s.envelopes, 0, "sealed on a full disk"),
            Err(e) => {
                let m = e.to_string();
                assert!(m.contains("disk is full"), "{m}");
                full_errors += 1;
            }
        }
    }
    assert!(full_errors > 0);
    let held = client.status().unwrap().pending_records;
    assert!(held > 4, "records kept in memory: {held}");
    assert_eq!(client.status().unwrap().outbox_envelopes, 0);

    // Room again: everything held is sealed, uploaded and stored once.
    std::fs::remove_file(&filler).unwrap();
    let sealed = client.seal().unwrap();
    assert!(sealed.envelopes >= 1);
    assert_eq!(u64::from(sealed.records), held, "every held record sealed");
    let up = client.upload_pending().await.unwrap();
    assert_eq!(up.remaining, 0, "{up:?}");
    let stored = ts.server.state.store.count_envelopes(&user).await.unwrap();
    assert_eq!(stored, u64::from(sealed.envelopes));
    assert_eq!(client.status().unwrap().acknowledged_total, stored);
    eprintln!(
        "phone disk full: {full_errors} seals refused (disk is full), {held} records held in memory, then {} envelopes sealed = acknowledged = stored",
        sealed.envelopes
    );
    drop(client);
    drop(fs);
    ts.server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Phones whose clocks are two hours off, either way: the client stamps envelopes and
/// requests with the server's time learned from answers (`Date`), so nothing is refused
/// `from_the_future` or `stale_request`. A phone whose clock goes wrong after
/// registration (the app restarted offline) gets `stale_request` once, learns from that
/// answer and authenticates on its retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_clock_skew_is_corrected_from_the_servers_answers() {
    let ts = common::start(&Backing::Embedded, "skew").await;
    let url = ts.server.url();
    let http = reqwest::Client::new();
    let skewed = |name: &str, user: &str, skew_ms: i64, signer: Arc<Ed25519Signer>| {
        phone(&url, &ts.key, &ts.dir.join(name), user, signer, |cfg| {
            cfg.clock_skew_ms = skew_ms;
        })
    };
    let use_it = |client: &Client| {
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let t0 = now_ns - 90_000_000_000;
        client.record_motion(&walking(50.0, t0)).unwrap();
        client.record_keys(&typing(100, t0)).unwrap();
        u64::from(client.seal().unwrap().envelopes)
    };
    for skew_ms in [7_200_000i64, -7_200_000] {
        let user = format!("skew-{}", common::rand_suffix());
        let token = admin_user(&http, &url, &user).await;
        let signer = new_signer();
        let client = skewed(&user, &user, skew_ms, signer);
        client.register_device(&token).await.unwrap();
        let created = use_it(&client);
        let up = client.upload_pending().await.unwrap();
        assert_eq!(
            (up.report.rejected, up.remaining),
            (0, 0),
            "skew {skew_ms}: {up:?}"
        );
        assert_eq!(
            ts.server.state.store.count_envelopes(&user).await.unwrap(),
            created
        );
        client.authenticate(false).await.unwrap();
        eprintln!(
            "phone clock {:+} h: {created} envelopes stored, authenticated",
            skew_ms / 3_600_000
        );
    }
    // Right at registration, wrong later (and the app restarted offline).
    let user = format!("skew-late-{}", common::rand_suffix());
    let token = admin_user(&http, &url, &user).await;
    let signer = new_signer();
    let client = skewed(&user, &user, 0, signer.clone());
    client.register_device(&token).await.unwrap();
    drop(client);
    let client = skewed(&user, &user, 7_200_000, signer);
    client.authenticate(false).await.unwrap();
    let created = use_it(&client);
    let up = client.upload_pending().await.unwrap();
    assert_eq!((up.report.rejected, up.remaining), (0, 0), "{up:?}");
    assert_eq!(
        ts.server.state.store.count_envelopes(&user).await.unwrap(),
        created
    );
    ts.server.shutdown().await.unwrap();
}
