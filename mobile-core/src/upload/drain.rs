//! [`Uploader::drain`]: empties the outbox batch by batch.

use std::collections::BTreeMap;

use tacit_shared::api::EnvelopeStatus;

use super::{Uploader, unix_ms_now};
use crate::queue::{Outbox, QueueError};

/// Reason recorded for a rejection whose result carries none.
const UNSPECIFIED_REASON: &str = "unspecified";

/// Rejection reasons that concern the device itself, not the envelope: nothing it
/// sends will be stored until it registers again, so a drain stops at the first batch
/// that has one (the rest stays queued, should the refusal be undone).
pub const DEVICE_REFUSALS: [&str; 3] = ["device_revoked", "device_cloned", "unknown_device"];

/// What one [`Uploader::drain`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Batches sent (each possibly with several attempts).
    pub batches: u64,
    /// Envelopes sent (counted once per batch, not per attempt).
    pub sent: u64,
    /// Envelopes the server stored now; deleted from the outbox.
    pub stored: u64,
    /// Envelopes the server had already stored; deleted from the outbox.
    pub duplicate: u64,
    /// Envelopes the server rejected for good; deleted and counted in the outbox.
    pub rejected: u64,
    /// The rejections by the server's reason code (`device_revoked`, `too_old`, ...).
    pub rejected_reasons: BTreeMap<String, u64>,
    /// Envelopes of the batch that failed; still in the outbox.
    pub failed: u64,
    /// Retried requests (attempts beyond the first), over all batches.
    pub retries: u64,
    /// Why the drain stopped early, if it did (upload or outbox error).
    pub error: Option<String>,
    /// How long the server asked to wait, when the drain stopped at its throttling
    /// (`Retry-After` of a 429 or 503, capped like the uploader's own waits).
    pub retry_after: Option<std::time::Duration>,
    /// The drain stopped because its time budget ran out (not an error: what is left
    /// waits for the next drain; a batch cut off mid-request is resent then and the
    /// server acknowledges it as a duplicate if it had stored it).
    pub out_of_time: bool,
}

impl DrainReport {
    /// Whether the drain emptied the outbox as far as it could see, without error.
    pub fn is_complete(&self) -> bool {
        self.error.is_none()
    }
}

impl Uploader {
    /// Uploads the outbox oldest first, one batch of [`UploadPolicy::batch_size`]
    /// at a time: acknowledged envelopes (`stored`, `duplicate`) are deleted, rejected
    /// ones deleted and counted, and the time of each successful batch recorded. Stops
    /// when the outbox is empty or at the first batch that fails (after its retries);
    /// that batch and everything after it stay queued for the next drain.
    ///
    /// Envelopes pushed while draining are sent in the same drain.
    ///
    /// [`UploadPolicy::batch_size`]: super::UploadPolicy::batch_size
    pub async fn drain(&self, outbox: &Outbox) -> DrainReport {
        self.drain_until(outbox, None).await
    }

    /// [`Uploader::drain`] within a time budget: no batch starts after `deadline`, and a
    /// batch still in flight then is abandoned (it stays queued). A background task
    /// (iOS gives about 30 s, Android's WorkManager 10 minutes) ends in time this way
    /// instead of being killed mid-write.
    pub async fn drain_until(
        &self,
        outbox: &Outbox,
        deadline: Option<tokio::time::Instant>,
    ) -> DrainReport {
        let mut report = DrainReport::default();
        if let Err(e) = self.drain_into(outbox, &mut report, deadline).await {
            report.error = Some(e);
        }
        report
    }

    async fn drain_into(
        &self,
        outbox: &Outbox,
        report: &mut DrainReport,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), String> {
        loop {
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                report.out_of_time = !outbox.peek_oldest(1).map_err(outbox_error)?.is_empty();
                return Ok(());
            }
            let batch = outbox
                .peek_oldest(self.policy.batch_size)
                .map_err(outbox_error)?;
            if batch.is_empty() {
                return Ok(());
            }
            let (ids, bytes): (Vec<[u8; 16]>, Vec<Vec<u8>>) =
                batch.into_iter().map(|e| (e.envelope_id, e.bytes)).unzip();
            report.batches += 1;
            report.sent += ids.len() as u64;
            let upload = self.upload_counting(&bytes, &mut report.retries);
            let result = match deadline {
                Some(d) => match tokio::time::timeout_at(d, upload).await {
                    Ok(r) => r,
                    Err(_) => {
                        report.failed += ids.len() as u64;
                        report.out_of_time = true;
                        return Ok(());
                    }
                },
                None => upload.await,
            };
            let response = match result {
                Ok(r) => r,
                Err(e) => {
                    report.failed += ids.len() as u64;
                    if let super::UploadError::Throttled {
                        retry_after: Some(after),
                        ..
                    } = &e
                    {
                        report.retry_after = Some(*after);
                    }
                    return Err(e.to_string());
                }
            };
            // The answer was checked to hold one result per envelope, in order.
            let mut acknowledged = Vec::with_capacity(ids.len());
            let mut rejected: BTreeMap<&str, Vec<[u8; 16]>> = BTreeMap::new();
            for (result, id) in response.results.iter().zip(&ids) {
                match result.status {
                    EnvelopeStatus::Stored => {
                        report.stored += 1;
                        acknowledged.push(*id);
                    }
                    EnvelopeStatus::Duplicate => {
                        report.duplicate += 1;
                        acknowledged.push(*id);
                    }
                    EnvelopeStatus::Rejected => {
                        report.rejected += 1;
                        let reason = result.reason.as_deref().unwrap_or(UNSPECIFIED_REASON);
                        *report
                            .rejected_reasons
                            .entry(reason.to_string())
                            .or_default() += 1;
                        rejected.entry(reason).or_default().push(*id);
                    }
                }
            }
            let mut removed = outbox.acknowledge(&acknowledged).map_err(outbox_error)?;
            for (reason, ids) in &rejected {
                removed += outbox.reject(ids, reason).map_err(outbox_error)?;
            }
            outbox
                .set_last_upload(unix_ms_now())
                .map_err(outbox_error)?;
            // Every envelope of the batch got a final result, so each round deletes
            // what it peeked and the next peek moves on. Should nothing have been
            // deleted all the same, stop rather than risk resending the same rows.
            if removed == 0 {
                return Err("no envelope of the batch could be removed from the outbox".into());
            }
            if rejected.keys().any(|r| DEVICE_REFUSALS.contains(r)) {
                return Ok(());
            }
        }
    }
}

fn outbox_error(e: QueueError) -> String {
    format!("outbox: {e}")
}
