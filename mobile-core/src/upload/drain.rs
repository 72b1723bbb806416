//! [`Uploader::drain`]: empties the outbox batch by batch.

use std::collections::BTreeMap;

use tacit_shared::api::EnvelopeStatus;

use super::{Uploader, unix_ms_now};
use crate::queue::{Outbox, QueueError};

/// Reason recorded for a rejection whose result carries none.
const UNSPECIFIED_REASON: &str = "unspecified";

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
    /// Envelopes of the batch that failed; still in the outbox.
    pub failed: u64,
    /// Retried requests (attempts beyond the first), over all batches.
    pub retries: u64,
    /// Why the drain stopped early, if it did (upload or outbox error).
    pub error: Option<String>,
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
        let mut report = DrainReport::default();
        if let Err(e) = self.drain_into(outbox, &mut report).await {
            report.error = Some(e);
        }
        report
    }

    async fn drain_into(&self, outbox: &Outbox, report: &mut DrainReport) -> Result<(), String> {
        loop {
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
            let response = match self.upload_counting(&bytes, &mut report.retries).await {
                Ok(r) => r,
                Err(e) => {
                    report.failed += ids.len() as u64;
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
        }
    }
}

fn outbox_error(e: QueueError) -> String {
    format!("outbox: {e}")
}
