//! kill -9 of the server during a stream of uploads: every envelope the client saw
//! acknowledged is stored after restart, and none twice.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use ring::rand::SystemRandom;
use tacit_backend::settings::Settings;
use tacit_shared::api::{EnvelopeStatus, PublicKeyJson, UploadResponse, b64_encode};
use tacit_shared::envelope::{Envelope, SealParams};
use tacit_shared::hpke::Suite;
use tacit_shared::identity::{DeviceSigner, Ed25519Signer};
use tacit_shared::payload::{FactorKind, FeatureRecord, Payload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_uploads_loses_no_acknowledged_envelope() {
    let mut rig = Rig::start("crash", "crash-user").await;
    let (dir, url, http) = (rig.dir.clone(), rig.url.clone(), rig.http.clone());
    let envelopes = rig.seal(900, &keystroke_payload(1));
    let total = envelopes.len() as u64;
    let mut server = rig.server.take().unwrap();
    let port = rig.port;
    let mut acknowledged: HashSet<String> = HashSet::new();
    let mut pending: Vec<usize> = (0..envelopes.len()).collect();
    let mut kills = 0;
    let mut failed_requests = 0;
    let mut round = 0u64;
    while !pending.is_empty() && round < 200 {
        round += 1;
        // Kill -9 the server every 5th batch (3 times), while the next request races it.
        let batch: Vec<usize> = pending.iter().copied().take(30).collect();
        let body = serde_json::json!({ "envelopes": batch.iter().map(|&i| b64_encode(&envelopes[i].1)).collect::<Vec<_>>() });
        let req = http.post(format!("{url}/v1/uploads")).json(&body).send();
        let kill_now = kills < 3 && round.is_multiple_of(5);
        let result = if kill_now {
            let killer = async {
                tokio::time::sleep(Duration::from_millis(3 + round % 7)).await;
                server.kill().ok(); // SIGKILL
            };
            let (r, _) = tokio::join!(req, killer);
            server.wait().ok();
            kills += 1;
            r
        } else {
            req.await
        };
        match result {
            Ok(r) if r.status() == 200 => {
                let resp: UploadResponse = r.json().await.unwrap();
                for res in resp.results {
                    assert_ne!(res.status, EnvelopeStatus::Rejected, "{res:?}");
                    acknowledged.insert(envelopes[batch[res.index]].0.clone());
                }
                pending.retain(|i| !acknowledged.contains(&envelopes[*i].0));
            }
            _ => failed_requests += 1,
        }
        if kill_now {
            // After the crash: check the store directly, then restart.
            let s = Settings {
                data_dir: dir.clone(),
                ..Settings::default()
            };
            let store = tacit_backend::server::open_store(&s).await.unwrap();
            let stored = store.count_envelopes("crash-user").await.unwrap();
            assert!(
                stored >= acknowledged.len() as u64,
                "stored {stored} < acknowledged {}",
                acknowledged.len()
            );
            drop(store);
            server = common::serve_process(&dir, port);
            common::wait_ready(&http, &url).await;
        }
    }
    assert!(
        pending.is_empty(),
        "{} envelopes never acknowledged",
        pending.len()
    );
    server.kill().ok();
    server.wait().ok();
    let s = Settings {
        data_dir: dir.clone(),
        ..Settings::default()
    };
    let store = tacit_backend::server::open_store(&s).await.unwrap();
    let stored = store.count_envelopes("crash-user").await.unwrap();
    println!(
        "crash test: {kills} kills, {failed_requests} failed requests, {} acknowledged, {stored} stored",
        acknowledged.len()
    );
    assert_eq!(kills, 3);
    assert_eq!(acknowledged.len() as u64, total);
    assert_eq!(stored, total, "every envelope stored exactly once");
    std::fs::remove_dir_all(&dir).ok();
}

/// kill -9 inside a group commit: the server is killed at many points of 32-envelope
/// requests, at random delays and twice for certain between writing a pack and
/// committing its rows (seen afterwards as an uncommitted pack row whose object is on
/// disk). Every acknowledged envelope is stored once, the client's retries store the
/// rest once, and the sweep of unfinished packs deletes the packs those kills left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_inside_a_group_commit_loses_nothing_and_leaves_nothing() {
    let mut rig = Rig::start("crash-commit", "commit-user").await;
    let (dir, url, http) = (rig.dir.clone(), rig.url.clone(), rig.http.clone());
    let envelopes = rig.seal(3_200, &keystroke_payload(8));
    let total = envelopes.len() as u64;
    let mut server = rig.server.take().unwrap();
    let port = rig.port;
    let device = rig.signer.public_key().device_id().0;
    let db_url = format!("sqlite://{}", dir.join("tacit.sqlite3").display());
    let objects = dir.join("objects");

    let mut acknowledged: HashSet<String> = HashSet::new();
    let mut pending: Vec<usize> = (0..envelopes.len()).collect();
    let (mut kills, mut random_kills, mut held_tries) = (0u32, 0u32, 0u32);
    // The uncommitted packs seen after the kills (a pack stays uncommitted until the
    // sweep, so later kills see it again: counted once).
    let (mut inside, mut before_object) = (HashSet::new(), HashSet::new());
    let mut round = 0u64;
    while !pending.is_empty() && round < 400 {
        round += 1;
        let batch: Vec<usize> = pending.iter().copied().take(32).collect();
        let body = serde_json::json!({ "envelopes": batch.iter().map(|&i| b64_encode(&envelopes[i].1)).collect::<Vec<_>>() });
        let req = http.post(format!("{url}/v1/uploads")).json(&body).send();
        // Every other request is killed: at delays spread over a request's duration
        // (where a kill lands depends on this machine's speed), and, until two kills
        // landed inside a commit, for certain between a pack and its commit.
        let kill = if !round.is_multiple_of(2) {
            Kill::No
        } else if inside.len() < 2 && round.is_multiple_of(4) && held_tries < 40 {
            held_tries += 1;
            Kill::InsideCommit
        } else if random_kills < 40 {
            random_kills += 1;
            Kill::AtRandom
        } else {
            Kill::No
        };
        let (result, killed) = match kill {
            Kill::No => (req.await, false),
            Kill::AtRandom => {
                let delay = Duration::from_micros(500 + (u64::from(random_kills) * 1_737) % 25_000);
                let killer = async {
                    tokio::time::sleep(delay).await;
                    server.kill().ok(); // SIGKILL
                };
                let (r, _) = tokio::join!(req, killer);
                (r, true)
            }
            Kill::InsideCommit => {
                // Packs left uncommitted before this request (by earlier kills, or a
                // failed request) are not its own.
                let known = uncommitted_packs(&db_url).await;
                let req = tokio::spawn(req);
                let killed = kill_inside_commit(&db_url, &objects, &known, &mut server, || {
                    req.is_finished()
                })
                .await;
                (req.await.expect("the request's task"), killed)
            }
        };
        if killed {
            server.wait().ok();
            kills += 1;
        }
        if let Ok(r) = result
            && r.status() == 200
        {
            let resp: UploadResponse = r.json().await.unwrap();
            for res in resp.results {
                assert_ne!(res.status, EnvelopeStatus::Rejected, "{res:?}");
                acknowledged.insert(envelopes[batch[res.index]].0.clone());
            }
            pending.retain(|i| !acknowledged.contains(&envelopes[*i].0));
        }
        if killed {
            // Where did the kill land? Uncommitted packs, with their object on disk
            // or not yet.
            for key in uncommitted_packs(&db_url).await {
                if objects.join(&key).exists() {
                    inside.insert(key);
                } else {
                    before_object.insert(key);
                }
            }
            server = common::serve_process(&dir, port);
            common::wait_ready(&http, &url).await;
        }
    }
    server.kill().ok();
    server.wait().ok();
    println!(
        "group-commit crash test: {kills} kills ({random_kills} at random delays, \
         {held_tries} tries between a pack and its commit), {} inside a commit (pack \
         written, rows not), {} before the pack was written, {} acknowledged of {total}",
        inside.len(),
        before_object.len(),
        acknowledged.len()
    );
    assert!(
        inside.len() >= 2,
        "{} kills landed between a pack and its commit in {held_tries} tries",
        inside.len()
    );
    assert!(pending.is_empty(), "{} never acknowledged", pending.len());

    let s = Settings {
        data_dir: dir.clone(),
        ..Settings::default()
    };
    let store = tacit_backend::server::open_store(&s).await.unwrap();
    assert_eq!(
        store.count_envelopes("commit-user").await.unwrap(),
        total,
        "every envelope stored exactly once"
    );
    // The packs the kills left: gone with the sweep, and only they.
    let cut = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 1;
    let swept = tacit_backend::retention::sweep_unfinished(store.as_ref(), cut)
        .await
        .unwrap();
    assert_eq!(
        swept,
        (inside.len() + before_object.len()) as u64,
        "the sweep deletes exactly the unfinished packs"
    );
    // Every envelope reads back from the pack its row names.
    let mut read = 0u64;
    for seq in 0..total {
        let seen = store
            .seen(device, seq)
            .await
            .unwrap()
            .expect("a stored envelope");
        store
            .objects()
            .read_envelope(&seen.object_key, &seen.envelope_id)
            .await
            .unwrap();
        read += 1;
    }
    assert_eq!(read, total);
    let packs: std::collections::BTreeSet<String> = {
        let mut keys = std::collections::BTreeSet::new();
        for seq in 0..total {
            let seen = store.seen(device, seq).await.unwrap().unwrap();
            keys.insert(seen.object_key);
        }
        keys
    };
    let on_disk: std::collections::BTreeSet<String> = store
        .list_feature_objects("commit-user")
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(on_disk, packs, "objects that no row names");
    std::fs::remove_dir_all(&dir).ok();
}

/// How a request of the group-commit crash test ends.
enum Kill {
    /// It is answered.
    No,
    /// The server is killed after a delay, wherever the request then is.
    AtRandom,
    /// The server is killed between writing the request's pack and committing its rows.
    InsideCommit,
}

/// The object keys of the packs whose rows are not committed.
async fn uncommitted_packs(db_url: &str) -> HashSet<String> {
    let pool = sqlx::SqlitePool::connect(db_url).await.unwrap();
    let open: Vec<(String,)> =
        sqlx::query_as("SELECT object_key FROM packs WHERE committed = FALSE")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    open.into_iter().map(|(k,)| k).collect()
}

/// Kills `server` inside a group commit: polls the database (holding SQLite's one
/// write lock while it looks, released between looks) until a pack row other than
/// `known` is written but uncommitted; keeps the lock, so that the server cannot commit
/// the pack's rows; waits until the pack's object is on disk and the server has had
/// time to reach its commit, and kills it there. Returns false, killing nothing, when
/// the request was answered first (`answered`) or nothing showed within 10 s.
async fn kill_inside_commit(
    db_url: &str,
    objects: &std::path::Path,
    known: &HashSet<String>,
    server: &mut std::process::Child,
    answered: impl Fn() -> bool,
) -> bool {
    use sqlx::Connection;
    use std::str::FromStr;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(db_url)
        .unwrap()
        .busy_timeout(Duration::ZERO);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut killed = false;
    while !answered() && std::time::Instant::now() < deadline {
        // Busy: the server is writing; look again.
        if sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .is_err()
        {
            // Not a spin that would take a core from the server: a short pause, still
            // well inside the time the server takes to write the pack's object.
            std::thread::sleep(Duration::from_micros(100));
            continue;
        }
        let open: Vec<(String,)> =
            sqlx::query_as("SELECT object_key FROM packs WHERE committed = FALSE")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        if let Some((key,)) = open.into_iter().find(|(k,)| !known.contains(k)) {
            let object = objects.join(&key);
            while !object.exists() && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // The object's fsync, then the commit that waits for this lock.
            tokio::time::sleep(Duration::from_millis(100)).await;
            server.kill().ok(); // SIGKILL
            killed = true;
        }
        sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
        if killed {
            break;
        }
    }
    conn.close().await.ok();
    killed
}

/// A server (a child process on a SQLite data directory) with one user and one
/// registered Ed25519 device.
struct Rig {
    dir: std::path::PathBuf,
    port: u16,
    url: String,
    http: reqwest::Client,
    server: Option<std::process::Child>,
    backend: tacit_shared::hpke::RecipientPublicKey,
    signer: Ed25519Signer,
}

impl Rig {
    async fn start(name: &str, user: &str) -> Rig {
        let dir = common::temp_dir(name);
        let backend = common::keygen_process(&dir);
        let port = common::free_port();
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let server = common::serve_process(&dir, port);
        common::wait_ready(&http, &url).await;
        let token = common::admin_user(&http, &url, user).await;
        let signer = Ed25519Signer::generate(&SystemRandom::new()).unwrap().0;
        let r = http
            .post(format!("{url}/v1/devices"))
            .json(&serde_json::json!({"enrolment_token": token, "public_key": PublicKeyJson::from_key(&signer.public_key())}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        Rig {
            dir,
            port,
            url,
            http,
            server: Some(server),
            backend,
            signer,
        }
    }

    /// `n` envelopes of `payload`, sequence numbers 0.., as (id hex, bytes).
    fn seal(&self, n: u64, payload: &Payload) -> Vec<(String, Vec<u8>)> {
        let rng = SystemRandom::new();
        let now_ms = now_ms();
        (0..n)
            .map(|seq| {
                let p = SealParams {
                    suite: Suite::X25519Sha256ChaCha20Poly1305,
                    sequence: seq,
                    created_at_ms: now_ms,
                };
                let (h, bytes) =
                    Envelope::seal(p, payload, &self.backend, &self.signer, &rng).unwrap();
                (tacit_shared::api::hex(&h.envelope_id), bytes)
            })
            .collect()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `records` fixed-text keystroke records of now.
fn keystroke_payload(records: usize) -> Payload {
    Payload {
        face_images: Vec::new(),
        records: vec![
            FeatureRecord {
                factor: FactorKind::KeystrokeFixed,
                schema_version: 1,
                window_start_ms: now_ms(),
                window_ms: 400,
                context: Some([5; 16]),
                values: vec![0.1; 31],
            };
            records
        ],
    }
}
