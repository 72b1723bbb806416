//! Sealing pending records into the outbox, and the SDK's sealer thread that does it
//! off the app's threads.
//!
//! `record_*` runs on whatever thread the app calls from — the main thread in most
//! apps — so it only appends feature records. Sealing (HPKE, the device signature,
//! which may call the app's key store, and the outbox's fsync) happens here, on one
//! thread per process shared by every client, when a client holds a full envelope's
//! worth of records or its oldest pending record has waited [`SealPolicy::after`];
//! after a failed seal (a locked key store) it waits, with a doubling delay, before it
//! tries again. At [`HARD_PENDING_RECORDS`] (a sealer that cannot keep up: a key store
//! that fails or hangs) a `record_*` call first seals on the caller's thread, and if
//! that fails, or a seal is still running, the call is refused with the error: memory
//! stays bounded and the app hears why, instead of records being dropped silently.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use ring::rand::SystemRandom;
use tacit_shared::envelope::{Envelope, SealParams};
use tacit_shared::hpke::Suite;
use tacit_shared::identity::DeviceSigner;
use tacit_shared::payload::{FaceImage, FeatureRecord, MAX_FACE_IMAGES, Payload};

use super::backend_keys::BackendKeys;
use super::clock::ServerClock;
use super::{ClientError, Network, RECORDS_PER_ENVELOPE, SealOutcome};
use crate::factors::gait::GaitExtractor;
use crate::factors::keystroke::FreeTextExtractor;
use crate::queue::{Outbox, QueuedEnvelope};

/// Pending records at which a client asks the sealer thread to seal.
pub const MAX_PENDING_RECORDS: usize = 4 * RECORDS_PER_ENVELOPE;
/// Pending records at which the caller seals on its own thread (backpressure).
pub const HARD_PENDING_RECORDS: usize = 4 * MAX_PENDING_RECORDS;
/// Pending face images at which the caller seals on its own thread.
const HARD_PENDING_FACES: usize = 2 * MAX_FACE_IMAGES;
/// How often the sealer thread looks for records that waited long enough.
const TICK: Duration = Duration::from_millis(500);
/// First wait after a failed background seal; doubles up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
/// Longest wait between background seals that fail.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// When records are sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealPolicy {
    /// Seal on the SDK's sealer thread (`true`, apps) or on the caller's thread when a
    /// `record_*` call fills an envelope (`false`: deterministic, no thread; the
    /// simulator, which seals explicitly after each activity).
    pub background: bool,
    /// Seal records that have waited this long (background only), so that an app that
    /// records a little at a time does not keep records in memory for hours.
    pub after: Duration,
}

impl Default for SealPolicy {
    /// In the background, after at most 60 s: a minute of walking is a few tens of
    /// records, a few KiB sealed once instead of per window.
    fn default() -> Self {
        SealPolicy {
            background: true,
            after: Duration::from_secs(60),
        }
    }
}

/// What capture holds between `record_*` and sealing.
pub(super) struct Capture {
    pub(super) gait: GaitExtractor,
    pub(super) free_text: FreeTextExtractor,
    pub(super) pending: Vec<FeatureRecord>,
    /// Normalised face images waiting to be sealed; an envelope's worth
    /// ([`MAX_FACE_IMAGES`]) is sealed as soon as it is there.
    pub(super) pending_faces: Vec<FaceImage>,
    /// When the oldest record or image still pending arrived.
    pub(super) oldest: Option<Instant>,
    pub(super) network: Network,
}

impl Capture {
    /// Notes that something was appended (starts the time policy's clock).
    pub(super) fn appended(&mut self) {
        if self.oldest.is_none() && (!self.pending.is_empty() || !self.pending_faces.is_empty()) {
            self.oldest = Some(Instant::now());
        }
    }
}

/// The state sealing needs, shared between a client and the sealer thread.
pub(super) struct Sealing {
    pub(super) outbox: Outbox,
    pub(super) signer: Arc<dyn DeviceSigner>,
    pub(super) clock: Arc<ServerClock>,
    pub(super) backend_keys: BackendKeys,
    pub(super) policy: SealPolicy,
    rng: SystemRandom,
    capture: Mutex<Capture>,
    /// One seal run at a time: sequences are allocated and pushed in order.
    run: Mutex<()>,
    /// Records taken out of `capture` by a seal in progress (counted as pending).
    in_flight: AtomicU64,
    /// A request to the sealer thread is outstanding (coalesces requests).
    requested: AtomicBool,
    /// Why the last background seal failed; cleared by the next seal that succeeds.
    last_error: Mutex<Option<String>>,
    /// After background seals that failed: no background seal before this, and the
    /// delay that set it (doubling per failure).
    retry: Mutex<Option<(Instant, Duration)>>,
}

impl Sealing {
    pub(super) fn new(
        outbox: Outbox,
        signer: Arc<dyn DeviceSigner>,
        clock: Arc<ServerClock>,
        backend_keys: BackendKeys,
        policy: SealPolicy,
        capture: Capture,
    ) -> Self {
        Sealing {
            outbox,
            signer,
            clock,
            backend_keys,
            policy,
            rng: SystemRandom::new(),
            capture: Mutex::new(capture),
            run: Mutex::new(()),
            in_flight: AtomicU64::new(0),
            requested: AtomicBool::new(false),
            last_error: Mutex::new(None),
            retry: Mutex::new(None),
        }
    }

    pub(super) fn capture(&self) -> Result<MutexGuard<'_, Capture>, ClientError> {
        self.capture
            .lock()
            .map_err(|_| ClientError::Storage("client state poisoned by an earlier panic".into()))
    }

    /// Records and images not in the outbox yet (a seal in progress included).
    pub(super) fn pending(&self, c: &Capture) -> u64 {
        (c.pending.len() + c.pending_faces.len()) as u64 + self.in_flight.load(Ordering::Relaxed)
    }

    /// The last background seal's error, if it failed.
    pub(super) fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Before an append: when the pending records or images are at their hard bound,
    /// seals on the caller's thread first. Refuses (the caller's input is not taken)
    /// when that seal fails, or when a seal is already running — a key store that hangs
    /// must not hang the app's thread too.
    pub(super) fn make_room(&self) -> Result<(), ClientError> {
        let (records, faces) = {
            let c = self.capture()?;
            (c.pending.len(), c.pending_faces.len())
        };
        if records < HARD_PENDING_RECORDS && faces < HARD_PENDING_FACES {
            return Ok(());
        }
        let run = match self.run.try_lock() {
            Ok(run) => run,
            Err(std::sync::TryLockError::WouldBlock) => {
                return Err(ClientError::Seal(format!(
                    "{records} records and {faces} images are waiting for a seal that has \
                     not finished (the device key store does not answer): input refused"
                )));
            }
            Err(std::sync::TryLockError::Poisoned(_)) => {
                return Err(ClientError::Storage(
                    "sealing poisoned by an earlier panic".into(),
                ));
            }
        };
        self.seal_locked(&run).map(|_| ())
    }

    /// After an append: asks the sealer thread for a seal when an envelope's worth is
    /// pending; seals on the caller's thread when sealing is not in the background (or
    /// there is no sealer thread).
    pub(super) fn after_append(self: &Arc<Self>) -> Result<(), ClientError> {
        let (records, faces) = {
            let c = self.capture()?;
            (c.pending.len(), c.pending_faces.len())
        };
        if records < MAX_PENDING_RECORDS && faces < MAX_FACE_IMAGES {
            return Ok(());
        }
        if self.policy.background && self.request() {
            return Ok(());
        }
        self.seal().map(|_| ())
    }

    /// Asks the sealer thread to seal this client; `false` if there is no sealer thread.
    fn request(self: &Arc<Self>) -> bool {
        if self.requested.swap(true, Ordering::AcqRel) {
            return true;
        }
        let sent = sealer().is_some_and(|tx| {
            tx.lock()
                .is_ok_and(|tx| tx.send(Msg::Seal(Arc::downgrade(self))).is_ok())
        });
        if !sent {
            self.requested.store(false, Ordering::Release);
        }
        sent
    }

    /// Registers this client for the time policy with the sealer thread.
    pub(super) fn register(self: &Arc<Self>) {
        if let Some(tx) = sealer()
            && let Ok(tx) = tx.lock()
        {
            // A failed send means the thread is gone: size-triggered seals then fall
            // back to the caller's thread (`request` returns false).
            let _ = tx.send(Msg::Register(Arc::downgrade(self)));
        }
    }

    /// On the sealer thread: seals, keeping the outcome for `status`; after a failure
    /// the next background seal waits (1 s, doubling up to 5 minutes), so that a locked
    /// key store is not asked twice a second for ever.
    fn seal_in_background(&self) {
        self.requested.store(false, Ordering::Release);
        if self.backing_off() {
            return;
        }
        match self.seal() {
            Ok(_) => {
                if let Ok(mut retry) = self.retry.lock() {
                    *retry = None;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "background sealing failed; the records stay pending");
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(e.to_string());
                }
                if let Ok(mut retry) = self.retry.lock() {
                    let delay =
                        retry.map_or(FIRST_RETRY_DELAY, |(_, d)| (d * 2).min(MAX_RETRY_DELAY));
                    *retry = Some((Instant::now() + delay, delay));
                }
            }
        }
    }

    /// Whether background seals wait after a failure.
    fn backing_off(&self) -> bool {
        self.retry
            .lock()
            .ok()
            .and_then(|r| *r)
            .is_some_and(|(at, _)| Instant::now() < at)
    }

    /// Whether the time policy wants a seal now.
    fn due(&self) -> bool {
        !self.backing_off()
            && self
                .capture
                .lock()
                .ok()
                .and_then(|c| c.oldest)
                .is_some_and(|t| t.elapsed() >= self.policy.after)
    }

    /// Seals the records and images pending when it starts into envelopes in the
    /// outbox (those that arrive meanwhile wait for the next seal: chasing them would
    /// seal a trickle of small envelopes). Each envelope's records leave `capture`
    /// while it is sealed, so that `record_*` is never held up by sealing; if sealing
    /// fails they go back in front, in order.
    pub(super) fn seal(&self) -> Result<SealOutcome, ClientError> {
        let run = self
            .run
            .lock()
            .map_err(|_| ClientError::Storage("sealing poisoned by an earlier panic".into()))?;
        self.seal_locked(&run)
    }

    /// [`Sealing::seal`] with the run lock held (`_run` proves it).
    fn seal_locked(&self, _run: &MutexGuard<'_, ()>) -> Result<SealOutcome, ClientError> {
        let mut out = SealOutcome::default();
        let (mut records_left, mut faces_left) = {
            let c = self.capture()?;
            (c.pending.len(), c.pending_faces.len())
        };
        loop {
            let payload = {
                let mut c = self.capture()?;
                let n = records_left.min(RECORDS_PER_ENVELOPE);
                // Images travel in envelopes of their own: a few hundred KiB that a
                // flaky network may have to send again should not hold the feature
                // records back.
                let faces = if n == 0 {
                    faces_left.min(MAX_FACE_IMAGES)
                } else {
                    0
                };
                if n == 0 && faces == 0 {
                    if c.pending.is_empty() && c.pending_faces.is_empty() {
                        c.oldest = None;
                    } else {
                        // What arrived during this seal starts the time policy anew.
                        c.oldest = Some(Instant::now());
                    }
                    break;
                }
                records_left -= n;
                faces_left -= faces;
                let payload = Payload {
                    records: c.pending.drain(..n).collect(),
                    face_images: c.pending_faces.drain(..faces).collect(),
                };
                self.in_flight.store((n + faces) as u64, Ordering::Relaxed);
                payload
            };
            let result = self.seal_one(&payload);
            let evicted = match result {
                Ok(evicted) => {
                    // Under the capture lock, like the take: `pending` never counts a
                    // record twice or not at all.
                    let _c = self.capture()?;
                    self.in_flight.store(0, Ordering::Relaxed);
                    evicted
                }
                Err(e) => {
                    let mut c = self.capture()?;
                    self.in_flight.store(0, Ordering::Relaxed);
                    let n = payload.records.len() + payload.face_images.len();
                    c.pending.splice(0..0, payload.records);
                    c.pending_faces.splice(0..0, payload.face_images);
                    c.appended();
                    tracing::debug!(records = n, "sealing failed; records kept");
                    return Err(e);
                }
            };
            out.evicted += evicted;
            out.envelopes += 1;
            out.records += (payload.records.len() + payload.face_images.len()) as u32;
        }
        if let Ok(mut last) = self.last_error.lock() {
            *last = None;
        }
        if out.envelopes > 0 {
            tracing::info!(
                envelopes = out.envelopes,
                records = out.records,
                evicted = out.evicted,
                "sealed"
            );
        }
        Ok(out)
    }

    /// Seals one payload into the outbox; returns the envelopes evicted to make room.
    fn seal_one(&self, payload: &Payload) -> Result<u64, ClientError> {
        let sequence = self.outbox.allocate_sequence()?;
        let params = SealParams {
            suite: Suite::X25519Sha256ChaCha20Poly1305,
            sequence,
            created_at_ms: self.clock.now_ms(),
        };
        let recipient = self.backend_keys.key_for(params.created_at_ms);
        let signer = Observed {
            inner: self.signer.as_ref(),
            failure: Mutex::new(None),
        };
        let (header, bytes) = Envelope::seal(params, payload, &recipient, &signer, &self.rng)
            .map_err(
                |e| match signer.failure.lock().ok().and_then(|f| f.clone()) {
                    // The device key store failed (locked, invalidated): the app's to act on.
                    Some(why) => ClientError::KeyStore(why),
                    None => ClientError::Seal(e.to_string()),
                },
            )?;
        let queued = QueuedEnvelope {
            envelope_id: header.envelope_id,
            sequence,
            created_at_ms: header.created_at_ms,
            bytes,
        };
        Ok(self.outbox.push(&queued)?)
    }
}

/// The device signer, noting its own failure so that it is reported as the key
/// store's (not as a failure of sealing itself).
struct Observed<'a> {
    inner: &'a dyn DeviceSigner,
    failure: Mutex<Option<String>>,
}

impl DeviceSigner for Observed<'_> {
    fn public_key(&self) -> tacit_shared::DevicePublicKey {
        self.inner.public_key()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, tacit_shared::identity::IdentityError> {
        self.inner.sign(message).inspect_err(|e| {
            if let Ok(mut f) = self.failure.lock() {
                *f = Some(e.to_string());
            }
        })
    }
}

enum Msg {
    /// A client to watch for the time policy.
    Register(Weak<Sealing>),
    /// A client that holds an envelope's worth.
    Seal(Weak<Sealing>),
}

/// The process's sealer thread, started on first use; `None` if it could not start.
fn sealer() -> Option<&'static Mutex<Sender<Msg>>> {
    static SEALER: OnceLock<Option<Mutex<Sender<Msg>>>> = OnceLock::new();
    SEALER
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Msg>();
            let spawned = std::thread::Builder::new()
                .name("tacit-sealer".into())
                .spawn(move || run(rx));
            match spawned {
                Ok(_) => Some(Mutex::new(tx)),
                Err(e) => {
                    tracing::warn!(error = %e, "no sealer thread; sealing on the caller's thread");
                    None
                }
            }
        })
        .as_ref()
}

/// The sealer thread: seals on request, and every [`TICK`] seals the clients whose
/// oldest record waited long enough. Holds clients weakly: a dropped client is
/// forgotten.
fn run(rx: std::sync::mpsc::Receiver<Msg>) {
    let mut clients: Vec<Weak<Sealing>> = Vec::new();
    let mut next_tick = Instant::now() + TICK;
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Msg::Register(w)) => clients.push(w),
            Ok(Msg::Seal(w)) => {
                if let Some(s) = w.upgrade() {
                    s.seal_in_background();
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if Instant::now() >= next_tick {
            clients.retain(|w| w.strong_count() > 0);
            for w in &clients {
                if let Some(s) = w.upgrade()
                    && s.due()
                {
                    s.seal_in_background();
                }
            }
            next_tick = Instant::now() + TICK;
        }
    }
}
