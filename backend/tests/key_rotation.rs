//! HPKE key rotation end to end: the operator's real CLI (`keygen`, `keys root-keygen`,
//! `keys publish`), the gateway restarted on a new key directory like a rolling
//! deployment, and a real phone client that pins only the root: it learns the new key
//! from the signed list, envelopes already sealed to the old key still open during the
//! overlap, and forged or rolled-back lists are refused.

mod common;

use std::path::Path;
use std::sync::Arc;

use ring::rand::SystemRandom;
use tacit_backend::keys::{KEY_LIST_FILE, KeyRing};
use tacit_backend::server::{self, RunningServer};
use tacit_backend::settings::Settings;
use tacit_mobile_core::client::{Client, ClientConfig, ClientError};
use tacit_shared::hpke::RecipientPublicKey;
use tacit_shared::identity::{DeviceSigner, Ed25519Signer};

fn cli(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tacit-backend"))
        .args(args)
        .env("TACIT_DATA_DIR", dir)
        .output()
        .expect("run tacit-backend");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn field<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {out}"))
}

async fn start(s: &Settings) -> RunningServer {
    let keys = KeyRing::load(&s.keys_dir()).expect("load keys");
    let store = server::open_store(s).await.expect("open store");
    server::spawn(s.clone(), keys, store).await.expect("spawn")
}

fn phone(
    url: &str,
    pinned: &RecipientPublicKey,
    root: Option<[u8; 32]>,
    dir: &Path,
    user: &str,
) -> Client {
    let mut cfg = ClientConfig::new(
        url,
        pinned.as_bytes(),
        &pinned.key_id().to_hex(),
        dir.to_str().expect("utf-8"),
        user,
    )
    .expect("config");
    cfg.key_list_root = root;
    let signer = Arc::new(
        Ed25519Signer::generate(&SystemRandom::new())
            .expect("key")
            .0,
    );
    Client::new(cfg, Some(signer as Arc<dyn DeviceSigner>)).expect("client")
}

/// Records a few seconds of walking and seals it; returns the envelopes sealed.
fn capture(client: &Client, t0_s: i64) -> u32 {
    // Windows of the last few minutes (a window must lie within its envelope's
    // acceptance window): `t0_s` seconds after a start 10 minutes ago.
    let start_ns = (now_unix_s() - 600 + t0_s) * 1_000_000_000;
    client
        .record_motion(&common::walking(12.0, start_ns))
        .expect("record");
    let sealed = client.seal().expect("seal");
    assert!(sealed.envelopes > 0);
    sealed.envelopes
}

fn now_unix_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_learn_rotated_keys_and_old_envelopes_open_during_the_overlap() {
    let dir = common::temp_dir("rotation");
    let mut s = common::settings(&common::Backing::Embedded, &dir);
    s.listen = format!("127.0.0.1:{}", common::free_port());
    let k1 = common::keygen_process(&dir);
    let root_file = dir.join("root.pk8");
    let root_out = cli(
        &dir,
        &["keys", "root-keygen", "--out", root_file.to_str().unwrap()],
    );
    let root: [u8; 32] = tacit_shared::api::b64_decode(field(&root_out, "root_public_key="))
        .expect("base64")
        .try_into()
        .expect("32 bytes");
    let root_arg = root_file.to_str().unwrap();

    // No list published yet: the gateway says so, the phone keeps its pinned key.
    let mut srv = start(&s).await;
    let url = srv.url();
    let http = reqwest::Client::new();
    let r = http.get(format!("{url}/v1/keys")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let user = format!("rot-{}", common::rand_suffix());
    let token = common::admin_user(&http, &url, &user).await;
    let client = phone(&url, &k1, Some(root), &dir.join("phone"), &user);
    client.register_device(&token).await.unwrap();
    let probe = phone(&url, &k1, Some(root), &dir.join("probe"), &user);
    assert_eq!(probe.refresh_backend_keys().await.unwrap(), 0);
    drop(probe);

    let restart = |srv: RunningServer| {
        let s = s.clone();
        async move {
            srv.shutdown().await.expect("shutdown");
            start(&s).await
        }
    };
    let publish = |extra: &[&str]| {
        let mut args = vec!["keys", "publish", "--root", root_arg];
        args.extend_from_slice(extra);
        cli(&dir, &args)
    };

    // Serial 1: k1 alone.
    let out = publish(&[]);
    assert_eq!(field(&out, "serial="), "1");
    let list_v1 = std::fs::read(s.keys_dir().join(KEY_LIST_FILE)).unwrap();
    srv = restart(srv).await;
    let mut sealed = capture(&client, 0);
    // The first upload fetches the list by itself.
    let up = client.upload_pending().await.unwrap();
    assert_eq!(up.report.stored, u64::from(sealed), "{up:?}");
    assert_eq!(client.status().unwrap().key_list_serial, 1);

    // Rotation: k2 is added and published; the gateway restarts with both keys.
    // Envelopes sealed to k1 before the phone learns k2 wait in the outbox.
    let k2 = common::keygen_process(&dir);
    assert_eq!(field(&publish(&[]), "serial="), "2");
    srv = restart(srv).await;
    let old = capture(&client, 100) + capture(&client, 130) + capture(&client, 160);
    sealed += old;
    assert_eq!(
        client.status().unwrap().backend_key_id,
        k1.key_id().to_hex()
    );
    assert_eq!(client.refresh_backend_keys().await.unwrap(), 2);
    let st = client.status().unwrap();
    assert_eq!(
        st.backend_key_id,
        k2.key_id().to_hex(),
        "the new key takes over"
    );
    assert_eq!(
        st.outbox_envelopes,
        u64::from(old),
        "sealed to k1, still waiting"
    );
    let new = capture(&client, 200);
    sealed += new;
    let up = client.upload_pending().await.unwrap();
    assert_eq!(up.report.stored, u64::from(old + new), "{up:?}");
    assert_eq!(up.report.rejected, 0, "{up:?}");

    // After the overlap, k1 is retired: its private key goes, the list names k2 only.
    std::fs::remove_file(s.keys_dir().join(format!("hpke-{}.secret", k1.key_id()))).unwrap();
    assert_eq!(field(&publish(&[]), "serial="), "3");
    srv = restart(srv).await;
    sealed += capture(&client, 300);
    let up = client.upload_pending().await.unwrap();
    assert_eq!(up.report.rejected, 0, "{up:?}");
    assert_eq!(client.refresh_backend_keys().await.unwrap(), 3);
    let st = client.status().unwrap();
    assert_eq!(st.outbox_envelopes, 0);
    assert_eq!(
        st.acknowledged_total,
        u64::from(sealed),
        "acknowledged = sealed, lost = 0"
    );
    let export = common::export(&http, &url, &user).await;
    let stored = export["features"].as_array().map_or(0, Vec::len);
    assert_eq!(
        stored, sealed as usize,
        "stored = acknowledged, duplicated = 0"
    );
    eprintln!(
        "rotation: sealed {sealed} ({old} to the old key after the new one was published), \
         acknowledged {}, stored {stored}, rejected 0",
        st.acknowledged_total
    );

    // A phone still pinned to the retired key alone is refused: the retirement is real.
    let token = common::admin_user(&http, &url, &format!("{user}-old")).await;
    let stale = phone(&url, &k1, None, &dir.join("stale"), &format!("{user}-old"));
    stale.register_device(&token).await.unwrap();
    let n = capture(&stale, 0);
    let up = stale.upload_pending().await.unwrap();
    assert_eq!(up.report.rejected, u64::from(n), "{up:?}");

    // A list from another root (a compromised gateway, a network attacker) is refused,
    // and so is the old list replayed: the phone keeps sealing to k2.
    let other_root = dir.join("other.pk8");
    let other = tempdir_copy(&s.keys_dir(), &dir.join("forged-keys"));
    cli(
        &dir,
        &["keys", "root-keygen", "--out", other_root.to_str().unwrap()],
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tacit-backend"))
        .args(["keys", "publish", "--root", other_root.to_str().unwrap()])
        .env("TACIT_DATA_DIR", &dir)
        .env("TACIT_KEYS_DIR", &other)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (what, list) in [
        ("forged", std::fs::read(other.join(KEY_LIST_FILE)).unwrap()),
        ("rolled back", list_v1),
    ] {
        std::fs::write(s.keys_dir().join(KEY_LIST_FILE), list).unwrap();
        srv = restart(srv).await;
        let err = client.refresh_backend_keys().await.unwrap_err();
        assert!(matches!(&err, ClientError::KeyList(_)), "{what}: {err}");
        let st = client.status().unwrap();
        assert_eq!(st.backend_key_id, k2.key_id().to_hex(), "{what}");
        assert_eq!(st.key_list_serial, 3, "{what}");
    }
    srv.shutdown().await.unwrap();
    std::fs::remove_dir_all(&dir).ok();
}

/// A copy of the key directory's HPKE keys (not its list) at `to`.
fn tempdir_copy(from: &Path, to: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        if name.starts_with("hpke-") {
            std::fs::copy(&p, to.join(&name)).unwrap();
        }
    }
    to.to_path_buf()
}
