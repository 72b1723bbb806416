//! Attacks that must never work, whatever the behaviour: a replayed authentication
//! request, a replayed or tampered envelope captured on the network, a stolen device
//! key signing a request that carries the owner's captured envelope, and a cloned phone
//! (device key and state copied to another phone) once the owner's phone has uploaded
//! after the theft: the two phones then share sequence numbers, which gives the clone
//! away. Before that, a clone is only as good as its user's behaviour (measured).

use serde_json::json;
use tacit_mobile_core::client::KEY_FILE;
use tacit_mobile_core::queue::{Outbox, OutboxConfig};
use tacit_shared::api::{AuthDecision, authenticate_message, b64_encode};
use tacit_shared::identity::{DeviceSigner, Ed25519Signer};

use super::phone::SimPhone;
use crate::Person;

/// Outcome of one attack: whether it worked, and what the server said.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The attack worked.
    pub success: bool,
    /// The server's answer, for the report.
    pub answer: String,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The victim's envelope captured in transit: the oldest one waiting in its outbox
/// (read through a second handle on the outbox, as a network tap would see it).
pub fn capture(victim: &SimPhone) -> anyhow::Result<Option<Vec<u8>>> {
    let outbox = Outbox::open(&victim.dir, OutboxConfig::default())?;
    Ok(outbox.peek_oldest(1)?.into_iter().next().map(|e| e.bytes))
}

async fn upload_one(http: &reqwest::Client, url: &str, bytes: &[u8]) -> anyhow::Result<String> {
    let r = http
        .post(format!("{url}/v1/uploads"))
        .json(&json!({ "envelopes": [b64_encode(bytes)] }))
        .send()
        .await?;
    let v: serde_json::Value = r.json().await?;
    Ok(v["results"][0]["status"]
        .as_str()
        .unwrap_or("?")
        .to_string()
        + v["results"][0]["reason"]
            .as_str()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
            .as_str())
}

/// Sends a captured (already delivered) envelope again: works if stored a second time.
pub async fn replay_envelope(
    http: &reqwest::Client,
    url: &str,
    captured: &[u8],
) -> anyhow::Result<Attempt> {
    let answer = upload_one(http, url, captured).await?;
    Ok(Attempt {
        success: answer.starts_with("stored"),
        answer,
    })
}

/// Flips one byte of a captured envelope in each of its parts and sends them: works
/// if any is stored.
pub async fn tamper_envelope(
    http: &reqwest::Client,
    url: &str,
    captured: &[u8],
) -> anyhow::Result<Attempt> {
    let mut answers = Vec::new();
    let mut success = false;
    for at in [captured.len() / 8, captured.len() / 2, captured.len() - 1] {
        let mut t = captured.to_vec();
        t[at] ^= 0x20;
        let a = upload_one(http, url, &t).await?;
        success |= a.starts_with("stored");
        answers.push(a);
    }
    Ok(Attempt {
        success,
        answer: answers.join(", "),
    })
}

/// A new authentication request signed with the victim's device key (as a thief of
/// the key would sign it), carrying `envelopes`.
fn signed_request(victim: &SimPhone, envelopes: &[Vec<u8>]) -> anyhow::Result<serde_json::Value> {
    let pkcs8 = std::fs::read(victim.dir.join(KEY_FILE))?;
    let signer = Ed25519Signer::from_pkcs8(&pkcs8)?;
    let device = signer.public_key().device_id();
    let request_ms = now_ms(); // later than anything the phone sent
    let sig = signer.sign(&authenticate_message(&device.0, request_ms, envelopes))?;
    let envelopes: Vec<String> = envelopes.iter().map(|e| b64_encode(e)).collect();
    Ok(
        json!({ "device_id": device.to_hex(), "request_ms": request_ms,
        "envelopes": envelopes, "signature": b64_encode(&sig) }),
    )
}

/// Sends a signed authentication request twice (a network attacker replays it): works
/// if the second is answered at all.
pub async fn replay_request(
    http: &reqwest::Client,
    url: &str,
    victim: &SimPhone,
) -> anyhow::Result<Attempt> {
    let body = signed_request(victim, &[])?;
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let r = http
            .post(format!("{url}/v1/authenticate"))
            .json(&body)
            .send()
            .await?;
        statuses.push(r.status().as_u16());
    }
    Ok(Attempt {
        success: statuses[1] == 200,
        answer: format!("HTTP {} then {}", statuses[0], statuses[1]),
    })
}

/// The victim's device key, stolen, signs a new authentication request that carries
/// the victim's captured (already delivered) envelope: the attacker presents the
/// owner's recorded behaviour as fresh. Works if the answer is `accept`. Sent after
/// the gateway's retry window, so the envelope is a replay, not a client's retry.
pub async fn stolen_key_replay(
    http: &reqwest::Client,
    url: &str,
    victim: &SimPhone,
    captured: &[u8],
) -> anyhow::Result<Attempt> {
    let body = signed_request(victim, &[captured.to_vec()])?;
    let r = http
        .post(format!("{url}/v1/authenticate"))
        .json(&body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    Ok(Attempt {
        success: status == 200 && v["decision"] == "accept",
        answer: format!("HTTP {status} {}", v["decision"]),
    })
}

/// The victim's phone is cloned: its data directory (device key, registration, outbox)
/// copied to another phone, marked as part of the attack with its victim.
pub fn clone_phone(victim: &mut SimPhone) -> anyhow::Result<SimPhone> {
    let clone_dir = victim.dir.with_extension("stolen");
    let _ = std::fs::remove_dir_all(&clone_dir);
    std::fs::create_dir_all(&clone_dir)?;
    // Closed, so that the copy is a consistent state of its files.
    victim.close();
    for entry in std::fs::read_dir(&victim.dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), clone_dir.join(entry.file_name()))?;
        }
    }
    let mut cfg = victim.config().clone();
    cfg.data_dir = clone_dir;
    let mut phone = SimPhone::open(
        victim.index,
        &victim.user_id,
        cfg,
        victim.index as u64 ^ 0x5713,
    )?;
    let s = phone.client()?.status()?;
    phone.clock_ns = victim.clock_ns;
    phone.counters_base = [s.acknowledged_total, s.rejected_total, s.evicted_total];
    phone.in_attack = true;
    victim.in_attack = true;
    Ok(phone)
}

/// `attacker` uses a cloned phone with their own behaviour and authenticates: works if
/// the answer is `accept`.
pub async fn use_clone(
    clone: &mut SimPhone,
    attacker: &Person,
    session: u32,
) -> anyhow::Result<Attempt> {
    clone.activity(attacker, session, 60.0, 5)?;
    Ok(match clone.try_authenticate().await? {
        Ok(r) => Attempt {
            success: r.decision == AuthDecision::Accept,
            answer: format!("{:?} (LLR {:.1})", r.decision, r.llr),
        },
        Err(refused) => Attempt {
            success: false,
            answer: refused.to_string(),
        },
    })
}
