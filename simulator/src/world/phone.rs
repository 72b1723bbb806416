//! One person's phone in a simulated world: the real mobile-core client with its own
//! data directory (outbox, device key, registration), and what people do with it.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tacit_mobile_core::client::{Client, ClientConfig};
use tacit_shared::hpke::RecipientPublicKey;

use crate::typing::{CMU_KEYS, CMU_PHRASE};
use crate::{Person, SplitMix64};

/// Nanoseconds per second.
const SEC: i64 = 1_000_000_000;

/// A phone.
pub struct SimPhone {
    /// The owner's index in the population.
    pub index: usize,
    /// The owner's user id.
    pub user_id: String,
    /// The phone's core while the phone is in use (`None`: closed; everything it needs
    /// is in its data directory, as after an app restart).
    client: Option<Client>,
    /// How the core is configured.
    cfg: ClientConfig,
    /// Its data directory.
    pub dir: PathBuf,
    /// Envelopes it sealed.
    pub sealed: u64,
    /// Randomness of what happens on this phone.
    pub rng: SplitMix64,
    /// The phone's clock for sensor timestamps: where the last activity ended. A world
    /// lives its days in seconds, so activities are laid end to end on this clock (it
    /// runs ahead of the wall clock) rather than at "now", which would overlap.
    pub clock_ns: i64,
    /// The outbox counters when this phone object was created (acknowledged, rejected,
    /// evicted): non-zero for a cloned phone, whose counters are the victim's so far.
    pub counters_base: [u64; 3],
    /// Part of the cloned-phone attack (a clone, or its victim): its envelopes may be
    /// refused once the clone is caught, and are accounted apart from honest phones'.
    pub in_attack: bool,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// An administrator call straight to the backend (the operator's side, not through
/// the phones' network), retried while the backend is unreachable or answers 5xx (a
/// restart midway through a day), for at most [`RETRY_FOR`]. Only the calls made
/// before any restart (creating users) are not idempotent.
pub(super) async fn admin(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut retry = Retry::new();
    loop {
        let mut req = http.post(format!("{url}{path}")).bearer_auth(token);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let last = match req.send().await {
            Ok(r) if !r.status().is_server_error() => {
                let status = r.status();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if !status.is_success() {
                    return Err(anyhow::anyhow!("{path}: HTTP {status}: {v}"));
                }
                return Ok(v);
            }
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) => e.to_string(),
        };
        retry
            .pause()
            .await
            .map_err(|why| anyhow::anyhow!("{path}: {last} ({why})"))?;
    }
}

impl SimPhone {
    /// A phone over an existing data directory (a cloned phone), opened.
    pub fn open(index: usize, user_id: &str, cfg: ClientConfig, seed: u64) -> anyhow::Result<Self> {
        let client = Client::new(cfg.clone(), None)?;
        Ok(SimPhone {
            index,
            user_id: user_id.to_string(),
            dir: cfg.data_dir.clone(),
            client: Some(client),
            cfg,
            sealed: 0,
            rng: SplitMix64::new(seed),
            clock_ns: 0,
            counters_base: [0; 3],
            in_attack: false,
        })
    }

    /// The phone's core, opened from its data directory if it was closed.
    pub fn client(&mut self) -> anyhow::Result<&Client> {
        if self.client.is_none() {
            self.client = Some(Client::new(self.cfg.clone(), None)?);
        }
        self.client
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("client vanished"))
    }

    /// Closes the core (the app goes to the background and is killed): a world of many
    /// phones keeps only the ones in use open.
    pub fn close(&mut self) {
        self.client = None;
    }

    /// Reads the outbox's counters for the final accounting (from its data directory,
    /// without opening the whole core) and deletes the phone's data directory: after its last day nothing reads it again, and a world of many
    /// people must not keep every phone's files until the end of the run.
    pub fn retire(mut self) -> anyhow::Result<tacit_mobile_core::queue::OutboxStats> {
        let stats = {
            self.close();
            let outbox =
                tacit_mobile_core::queue::Outbox::open(&self.cfg.data_dir, self.cfg.outbox)
                    .map_err(|e| anyhow::anyhow!("{}: outbox: {e}", self.user_id))?;
            outbox
                .stats()
                .map_err(|e| anyhow::anyhow!("{}: outbox: {e}", self.user_id))?
        };
        std::fs::remove_dir_all(&self.dir).map_err(|e| {
            anyhow::anyhow!("{}: deleting {}: {e}", self.user_id, self.dir.display())
        })?;
        Ok(stats)
    }

    /// The configuration the phone's core uses.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// Creates the user (admin calls to `url`), a phone that reaches the backend at
    /// `phone_url` (through the faulty network) and registers it with a one-time token.
    #[allow(clippy::too_many_arguments)]
    pub async fn enrol_device(
        http: &reqwest::Client,
        url: &str,
        phone_url: &str,
        admin_token: &str,
        key: &RecipientPublicKey,
        dir: &Path,
        index: usize,
        seed: u64,
    ) -> anyhow::Result<SimPhone> {
        let user_id = format!("sim-{index}");
        admin(
            http,
            url,
            admin_token,
            "/v1/users",
            // Every simulated person consents to training: the world can then train
            // its models from its own uploads (`--learn`).
            Some(json!({ "user_id": user_id, "training_consent": true })),
        )
        .await?;
        let t = admin(
            http,
            url,
            admin_token,
            &format!("/v1/users/{user_id}/enrolment-tokens"),
            None,
        )
        .await?;
        let dir = dir.join(&user_id);
        let mut cfg = ClientConfig::new(
            phone_url,
            key.as_bytes(),
            &key.key_id().to_hex(),
            &dir.to_string_lossy(),
            &user_id,
        )?;
        // Days pass in seconds here: back off in milliseconds, not seconds.
        cfg.upload.base_backoff = std::time::Duration::from_millis(10);
        cfg.upload.max_backoff = std::time::Duration::from_millis(200);
        cfg.upload.request_timeout = std::time::Duration::from_secs(20);
        // Sealed when the phone's activity ends (`activity`), on this thread: a seeded
        // world stays reproducible and its envelope count exact, and thousands of
        // phones need no thread of their own.
        cfg.sealing.background = false;
        let client = Client::new(cfg.clone(), None)?;
        // Registration goes through the network too. A lost answer may hide a
        // registration that worked: the retry (with a new token, the old one is used
        // up) is then answered as a success by the server, which knows this key.
        let mut token = t["token"].as_str().unwrap_or("").to_string();
        let mut tries = 0;
        while let Err(e) = client.register_device(&token).await {
            tries += 1;
            if tries > 8 {
                return Err(anyhow::anyhow!("{user_id}: {e}"));
            }
            token = admin(
                http,
                url,
                admin_token,
                &format!("/v1/users/{user_id}/enrolment-tokens"),
                None,
            )
            .await?["token"]
                .as_str()
                .unwrap_or("")
                .to_string();
        }
        Ok(SimPhone {
            index,
            user_id,
            client: Some(client),
            cfg,
            dir,
            sealed: 0,
            rng: SplitMix64::new(crate::rng::derive(seed, 0x9407, index as u64)),
            clock_ns: 0,
            counters_base: [0; 3],
            in_attack: false,
        })
    }

    /// `person` uses the phone (on day `session`): walks `seconds`, then types the phrase
    /// `entries` times, after the previous activity on the phone's clock. The phone
    /// seals what it made.
    pub fn activity(
        &mut self,
        person: &Person,
        session: u32,
        seconds: f64,
        entries: u32,
    ) -> anyhow::Result<()> {
        let span = seconds as i64 + 6 * i64::from(entries) + 5;
        let t0 = (now_ns() - span * SEC).max(self.clock_ns + 5 * SEC);
        self.clock_ns = t0 + span * SEC;
        let walk = person.walk(seconds, t0, session, &mut self.rng);
        let client = self.client()?;
        for chunk in walk.chunks(512) {
            client.record_motion(chunk)?;
        }
        let mut typing = person.typing_session(session);
        let t1 = t0 + (seconds as i64 + 2) * SEC;
        for i in 0..i64::from(entries) {
            let events = typing.entry(CMU_KEYS, t1 + i * 6 * SEC, &mut self.rng);
            self.client()?.record_phrase_entry(CMU_PHRASE, &events)?;
        }
        let sealed = self.client()?.seal()?;
        self.sealed += u64::from(sealed.envelopes);
        Ok(())
    }

    /// The phone's camera takes `frame` (the app calls `record_face`); it is sealed with
    /// the next activity.
    pub fn face(
        &mut self,
        frame: &tacit_mobile_core::client::face::CameraFrame,
    ) -> anyhow::Result<()> {
        self.client()?.record_face(frame)?;
        Ok(())
    }

    /// Time passes on the phone's clock without activity (sessions apart).
    pub fn pause(&mut self, seconds: i64) {
        self.clock_ns += seconds * SEC;
    }

    /// Authenticates with the fresh evidence, asking again (as an app would) while the
    /// network fails the request (a broken connection, a captive portal's page, a
    /// backend being redeployed), for at most [`RETRY_FOR`]. Returns the answer
    /// and the latency of the request that got it, in ms.
    pub async fn authenticate(
        &mut self,
    ) -> anyhow::Result<(tacit_shared::api::AuthenticateResponse, f64)> {
        let mut retry = Retry::new();
        loop {
            let t = std::time::Instant::now();
            match self.client()?.authenticate(true).await {
                Ok(a) => return Ok((a, t.elapsed().as_secs_f64() * 1000.0)),
                Err(e) => retry
                    .after(&e)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {e}", self.user_id))?,
            }
        }
    }

    /// Authenticates once the network lets it through: `Ok(Err(reason))` when the
    /// backend refuses the phone itself (4xx: a revoked device), which no retry mends.
    pub async fn try_authenticate(
        &mut self,
    ) -> anyhow::Result<
        Result<tacit_shared::api::AuthenticateResponse, tacit_mobile_core::client::ClientError>,
    > {
        let mut retry = Retry::new();
        loop {
            match self.client()?.authenticate(true).await {
                Ok(a) => return Ok(Ok(a)),
                Err(
                    e @ tacit_mobile_core::client::ClientError::Refused {
                        status: 400..=499, ..
                    },
                ) if !is_transient(&e) => {
                    return Ok(Err(e));
                }
                Err(e) => retry
                    .after(&e)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {e}", self.user_id))?,
            }
        }
    }

    /// Uploads until the outbox is empty, draining again (after a pause) while the
    /// network or a redeployed backend leaves envelopes behind, for at most
    /// [`RETRY_FOR`].
    pub async fn upload(&mut self) -> anyhow::Result<u64> {
        let mut stored = 0;
        let mut retry = Retry::new();
        loop {
            let up = self.client()?.upload_pending().await?;
            stored += up.report.stored;
            if up.remaining == 0 {
                return Ok(stored);
            }
            retry.pause().await.map_err(|e| {
                anyhow::anyhow!(
                    "{}: outbox does not drain ({} left): {e}",
                    self.user_id,
                    up.remaining
                )
            })?;
        }
    }
}

/// How long a phone, or the operator's calls, keep asking again while the network or
/// the backend fails them (a redeployment midway through a day, graceful or a killed
/// process, takes seconds on a loaded machine; a fixed number of immediate retries ran
/// out before it was back).
pub const RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether a failed call is worth asking again: the network, an unusable answer (a
/// captive portal's page), the server's 5xx, 408 or 429.
fn is_transient(e: &tacit_mobile_core::client::ClientError) -> bool {
    use tacit_mobile_core::client::ClientError;
    match e {
        ClientError::Network(_) | ClientError::Server(_) => true,
        ClientError::Refused { status, .. } => matches!(status, 408 | 429 | 500..=599),
        _ => false,
    }
}

/// Tries of a call that failed otherwise than transiently (the app asks again a few
/// times, then shows the error).
const OTHER_TRIES: u32 = 10;

/// Patience with a failing backend: pauses doubling from 10 ms to 200 ms between tries, for at most
/// [`RETRY_FOR`] in all.
struct Retry {
    started: std::time::Instant,
    limit: std::time::Duration,
    pause: std::time::Duration,
    tries: u32,
}

impl Retry {
    fn new() -> Retry {
        Retry::within(RETRY_FOR)
    }

    fn within(limit: std::time::Duration) -> Retry {
        Retry {
            started: std::time::Instant::now(),
            limit,
            pause: std::time::Duration::from_millis(10),
            tries: 0,
        }
    }

    /// Waits before the next try, or says why there is none.
    async fn pause(&mut self) -> anyhow::Result<()> {
        if self.started.elapsed() > self.limit {
            return Err(anyhow::anyhow!(
                "still failing after {} tries in {:?}",
                self.tries + 1,
                self.limit
            ));
        }
        self.tries += 1;
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(std::time::Duration::from_millis(200));
        Ok(())
    }

    /// After the failure `e`: waits before the next try, or gives `e` back when the
    /// time is up (or, for a failure that is not transient, after [`OTHER_TRIES`]).
    async fn after(&mut self, e: &tacit_mobile_core::client::ClientError) -> anyhow::Result<()> {
        if !is_transient(e) && self.tries + 1 >= OTHER_TRIES {
            return Err(anyhow::anyhow!("{e} (after {OTHER_TRIES} tries)"));
        }
        self.pause()
            .await
            .map_err(|why| anyhow::anyhow!("{e} ({why})"))
    }
}

/// Builds the user's templates from what was uploaded; returns each factor's status.
pub async fn enrol_templates(
    http: &reqwest::Client,
    url: &str,
    admin_token: &str,
    user_id: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let v = admin(
        http,
        url,
        admin_token,
        &format!("/v1/users/{user_id}/templates"),
        None,
    )
    .await?;
    Ok(v["factors"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|f| {
                    (
                        f["factor"].as_str().unwrap_or("").to_string(),
                        f["status"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tacit_mobile_core::client::ClientError;

    fn refused(status: u16) -> ClientError {
        ClientError::Refused {
            what: "authentication",
            status,
            code: "x".into(),
            message: "x".into(),
            retry_after_ms: None,
        }
    }

    #[test]
    fn what_is_asked_again() {
        assert!(is_transient(&ClientError::Network("reset".into())));
        assert!(is_transient(&ClientError::Server("captive portal".into())));
        for status in [408, 429, 500, 502, 503] {
            assert!(is_transient(&refused(status)), "{status}");
        }
        for status in [400, 401, 403, 409] {
            assert!(!is_transient(&refused(status)), "{status}");
        }
        assert!(!is_transient(&ClientError::NotRegistered));
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_the_time_is_up() {
        let limit = std::time::Duration::from_millis(300);
        let mut retry = Retry::within(limit);
        let started = std::time::Instant::now();
        let mut tries = 0;
        while retry
            .after(&ClientError::Network("down".into()))
            .await
            .is_ok()
        {
            tries += 1;
        }
        // Pauses of 10, 20, 40, 80, 160, 200… ms: a few tries, then the limit.
        assert!(started.elapsed() >= limit, "{:?}", started.elapsed());
        assert!((3..=8).contains(&tries), "{tries}");
        // A refusal that is not transient ends after a few tries whatever the time.
        let mut retry = Retry::within(std::time::Duration::from_secs(3600));
        let mut tries = 0;
        while retry.after(&refused(400)).await.is_ok() {
            tries += 1;
        }
        assert_eq!(tries + 1, OTHER_TRIES);
    }
}
