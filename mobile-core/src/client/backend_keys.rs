//! Which backend HPKE key the phone seals to: the pinned one, or — when the app pins
//! the backend's root key — the current key of the root-signed list the phone learns
//! from `GET /v1/keys` (`tacit_shared::keylist`).
//!
//! The list is kept in the data directory (so a restart offline still seals to the
//! right key) and refreshed before uploads at most every [`REFRESH_INTERVAL`]. A list
//! that fails its signature, or is older than the one held, is refused and the held
//! one stays: a network attacker or a compromised gateway cannot steer phones to a key
//! of their choice. Envelopes already in the outbox keep the key they were sealed to;
//! the backend opens them while that key's overlap lasts.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tacit_shared::hpke::RecipientPublicKey;
use tacit_shared::keylist::{KeyList, MAX_SIGNED_LIST_LEN, SignedKeyList};

use super::ClientError;
use super::answer::read_answer;
use super::clock::ServerClock;
use super::keystore::write_private;

/// The file holding the signed list as received.
const FILE: &str = "backend_keys.json";
/// How often the list is fetched again (at the next upload after this).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(6 * 3600);

struct Held {
    list: Option<KeyList>,
    fetched_at: Option<Instant>,
}

/// The backend keys the phone knows.
pub(crate) struct BackendKeys {
    pinned: RecipientPublicKey,
    root: Option<[u8; 32]>,
    file: PathBuf,
    held: Mutex<Held>,
}

impl BackendKeys {
    /// The keys of data directory `dir`: `pinned` alone without a `root`; with one, the
    /// stored list when it still verifies (a damaged or foreign file is ignored, and the
    /// next refresh replaces it).
    pub(crate) fn open(dir: &Path, pinned: RecipientPublicKey, root: Option<[u8; 32]>) -> Self {
        let file = dir.join(FILE);
        let list = root.and_then(|root| {
            let bytes = std::fs::read(&file).ok()?;
            match SignedKeyList::from_json(&bytes).and_then(|s| s.verify(&root, 0)) {
                Ok(list) => Some(list),
                Err(e) => {
                    tracing::warn!(error = %e, "stored backend key list ignored");
                    None
                }
            }
        });
        BackendKeys {
            pinned,
            root,
            file,
            held: Mutex::new(Held {
                list,
                fetched_at: None,
            }),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The key to seal to at `now_ms` (server time).
    pub(crate) fn key_for(&self, now_ms: u64) -> RecipientPublicKey {
        self.held()
            .list
            .as_ref()
            .and_then(|l| l.current(now_ms))
            .and_then(|k| k.public().ok())
            .unwrap_or(self.pinned)
    }

    /// The serial of the list in use (0: none, the pinned key).
    pub(crate) fn serial(&self) -> u64 {
        self.held().list.as_ref().map_or(0, |l| l.serial)
    }

    /// Whether a refresh is due: a root is pinned and the list was not fetched in the
    /// last [`REFRESH_INTERVAL`] (or not at all since the app started).
    pub(crate) fn refresh_due(&self) -> bool {
        self.root.is_some()
            && self
                .held()
                .fetched_at
                .is_none_or(|t| t.elapsed() >= REFRESH_INTERVAL)
    }

    /// Fetches `GET /v1/keys`, verifies it against the pinned root and the held serial,
    /// keeps it and returns its serial. Without a pinned root: `Ok(0)`, nothing fetched.
    /// A backend without a published list (404) is not an error: the held keys stay.
    pub(crate) async fn refresh(
        &self,
        http: &reqwest::Client,
        base_url: &str,
        clock: &ServerClock,
    ) -> Result<u64, ClientError> {
        let Some(root) = self.root else {
            return Ok(0);
        };
        let resp = http
            .get(format!("{base_url}/v1/keys"))
            .send()
            .await
            .map_err(|e| ClientError::Network(crate::upload::error_chain(&e)))?;
        clock.observe(resp.headers());
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            self.held().fetched_at = Some(Instant::now());
            return Ok(self.serial());
        }
        let bytes = read_answer(resp, MAX_SIGNED_LIST_LEN, "key list").await?;
        let held_serial = self.serial();
        let list = SignedKeyList::from_json(&bytes).and_then(|s| s.verify(&root, held_serial))?;
        // Kept before use: a restart offline seals to the same key.
        write_private(&self.file, &bytes)
            .map_err(|e| ClientError::Storage(format!("{}: {e}", self.file.display())))?;
        let serial = list.serial;
        let mut held = self.held();
        if serial != held_serial {
            tracing::info!(serial, "backend key list updated");
        }
        held.list = Some(list);
        held.fetched_at = Some(Instant::now());
        Ok(serial)
    }
}
