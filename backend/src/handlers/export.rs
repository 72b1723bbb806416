//! `GET /v1/users/{id}/export`: everything the backend holds about one person, for the
//! person's right of access and portability (GDPR articles 15 and 20): the devices
//! registered for them, every feature record they uploaded (decoded from the stored
//! objects), their templates and the authentication decisions kept about them. Administrator only; deletion is `DELETE /v1/users/{id}`.
//! Bounded: a user with more than [`MAX_EXPORT_ENVELOPES`] stored batches, or whose
//! answer would take more than [`MAX_EXPORT_BYTES`] in memory, gets a clear 413 rather
//! than an answer that would not fit. Batches are counted one by one as they are read
//! (a stored object may pack many).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use tacit_shared::api::{algorithm_name, b64_encode};
use tacit_shared::identity::SignatureAlgorithm;
use tacit_shared::payload::Payload;

use super::admin::{authorize, valid_user_id};
use crate::error::ApiError;
use crate::state::{AppState, now_ms};

/// Most stored feature batches (envelopes) one export holds.
pub const MAX_EXPORT_ENVELOPES: usize = 20_000;

/// Most memory one export's answer may take, estimated per record (see
/// [`answer_bytes`]): the decoded records and their JSON together stay within a few
/// times this.
pub const MAX_EXPORT_BYTES: usize = 128 << 20;

/// The memory a batch's records take in the answer: per record its struct and strings
/// (about 150 bytes) and its JSON object (about 100); per value 4 bytes decoded and up
/// to 13 characters of JSON.
fn answer_bytes(records: &[tacit_shared::payload::FeatureRecord]) -> usize {
    records
        .iter()
        .map(|r| 256usize.saturating_add(r.values.len().saturating_mul(17)))
        .fold(0usize, usize::saturating_add)
}

/// What an export has read so far, against its bounds.
#[derive(Debug, Default)]
struct ExportBudget {
    envelopes: usize,
    bytes: usize,
}

impl ExportBudget {
    /// Counts one more stored batch whose answer takes `bytes`; `413
    /// export_too_large` past a bound.
    fn charge(&mut self, bytes: usize) -> Result<(), ApiError> {
        self.envelopes += 1;
        self.bytes = self.bytes.saturating_add(bytes);
        if self.envelopes > MAX_EXPORT_ENVELOPES || self.bytes > MAX_EXPORT_BYTES {
            return Err(too_large());
        }
        Ok(())
    }
}

/// `413 export_too_large`.
fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "export_too_large",
        format!(
            "more than {MAX_EXPORT_ENVELOPES} stored batches or {} MiB of answer, \
             more than one export holds",
            MAX_EXPORT_BYTES >> 20
        ),
    )
}

/// A user's data.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportResponse {
    /// The user.
    pub user_id: String,
    /// When the export was made (server clock, Unix ms).
    pub exported_at_ms: u64,
    /// Whether the user's uploaded features may train population models.
    pub training_consent: bool,
    /// Registered devices, oldest first.
    pub devices: Vec<ExportDevice>,
    /// Stored feature batches (one per envelope), in storage order.
    pub features: Vec<ExportBatch>,
    /// Templates, one per factor.
    pub templates: Vec<ExportTemplate>,
    /// Recorded authentication decisions, newest first (those still kept).
    pub decisions: Vec<super::verdict::DecisionRecord>,
}

/// A registered device.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportDevice {
    /// Device id (hex).
    pub device_id: String,
    /// Signature algorithm of its key.
    pub algorithm: String,
    /// Its public key (base64).
    pub public_key: String,
    /// When it was registered (Unix ms).
    pub created_at_ms: u64,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// The feature records of one uploaded envelope.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportBatch {
    /// The object the batch is stored in (a pack may hold several batches).
    pub object: String,
    /// The envelope the batch came in (hex).
    pub envelope_id: String,
    /// Its records.
    pub records: Vec<ExportRecord>,
}

/// One feature record, as the phone computed it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportRecord {
    /// `gait`, `keystroke-fixed` or `keystroke-free`.
    pub factor: String,
    /// Feature schema version.
    pub schema_version: u16,
    /// Start of the window (phone clock, Unix ms).
    pub window_start_ms: u64,
    /// Window length (ms).
    pub window_ms: u32,
    /// Context id (hex; e.g. which phrase was typed, salted), if any.
    pub context: Option<String>,
    /// The feature values.
    pub values: Vec<f32>,
}

/// A stored template.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportTemplate {
    /// The factor.
    pub factor: String,
    /// Format version of the template bytes.
    pub format: u32,
    /// When it was written (Unix ms).
    pub updated_at_ms: u64,
    /// The template bytes (base64).
    pub template: String,
}

/// Exports everything stored about a user.
#[utoipa::path(get, path = "/v1/users/{id}/export", params(("id" = String, Path, description = "user id", pattern = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")),
    security(("admin" = [])),
    responses((status = 200, body = ExportResponse), (status = 400, body = tacit_shared::api::ErrorBody),
        (status = 401, body = tacit_shared::api::ErrorBody), (status = 404, body = tacit_shared::api::ErrorBody),
        (status = 413, body = tacit_shared::api::ErrorBody), (status = 503, body = tacit_shared::api::ErrorBody)))]
pub async fn export_user(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ExportResponse>, ApiError> {
    authorize(&st, &headers)?;
    valid_user_id(&id)?;
    let Some(training_consent) = st.store.training_consent(&id).await? else {
        return Err(ApiError::not_found(format!("no user {id}")));
    };
    let devices = st
        .store
        .user_devices(&id)
        .await?
        .into_iter()
        .map(|d| ExportDevice {
            device_id: hex::encode(d.device_id),
            algorithm: SignatureAlgorithm::from_tag(d.algorithm)
                .map_or("unknown", algorithm_name)
                .to_string(),
            public_key: b64_encode(&d.public_key),
            created_at_ms: d.created_at_ms,
            revoked: d.revoked,
        })
        .collect();
    let objects = st.store.list_feature_objects(&id).await?;
    // Every object names at least one stored batch: too many objects fail before any
    // read.
    if objects.len() > MAX_EXPORT_ENVELOPES {
        return Err(too_large());
    }
    let mut budget = ExportBudget::default();
    let mut features = Vec::with_capacity(objects.len());
    let mut seen = std::collections::HashSet::new();
    for key in objects {
        for entry in st.store.objects().read_entries(&key).await? {
            // Each envelope once (packs hold only stored envelopes; a safeguard).
            if key.ends_with(crate::store::pack::PACK_SUFFIX) && !seen.insert(entry.envelope_id) {
                continue;
            }
            let payload = Payload::decode(&entry.payload).map_err(|e| {
                ApiError::internal(format!("stored batch in {key} does not decode: {e}"))
            })?;
            budget.charge(answer_bytes(&payload.records))?;
            features.push(ExportBatch {
                object: key.clone(),
                envelope_id: hex::encode(entry.envelope_id),
                records: payload
                    .records
                    .into_iter()
                    .map(|r| ExportRecord {
                        factor: r.factor.name().to_string(),
                        schema_version: r.schema_version,
                        window_start_ms: r.window_start_ms,
                        window_ms: r.window_ms,
                        context: r.context.map(hex::encode),
                        values: r.values,
                    })
                    .collect(),
            });
        }
    }
    let templates = st
        .store
        .templates(&id)
        .await?
        .into_iter()
        .map(|t| ExportTemplate {
            factor: t.factor,
            format: t.format,
            updated_at_ms: t.updated_at_ms,
            template: b64_encode(&t.blob),
        })
        .collect();
    let decisions = super::verdict::records(
        st.store
            .decisions(&id, st.settings.verdict.decisions_kept)
            .await?,
    )?;
    let answer = ExportResponse {
        user_id: id,
        exported_at_ms: now_ms(),
        training_consent,
        devices,
        features,
        templates,
        decisions,
    };
    tracing::info!(user = %answer.user_id, devices = answer.devices.len(), batches = answer.features.len(), templates = answer.templates.len(), "user data exported");
    Ok(Json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_counts_batches_and_bytes() {
        let mut b = ExportBudget::default();
        for _ in 0..MAX_EXPORT_ENVELOPES {
            assert!(b.charge(1).is_ok());
        }
        let e = b.charge(1).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        let mut b = ExportBudget::default();
        assert!(b.charge(MAX_EXPORT_BYTES).is_ok());
        assert!(b.charge(1).is_err());
        let mut b = ExportBudget::default();
        assert!(b.charge(usize::MAX).is_err());
    }

    #[test]
    fn the_answer_estimate_grows_with_records_and_values() {
        use tacit_shared::payload::{FactorKind, FeatureRecord};
        let record = |n: usize| FeatureRecord {
            factor: FactorKind::Gait,
            schema_version: 1,
            window_start_ms: 0,
            window_ms: 5120,
            context: None,
            values: vec![0.5; n],
        };
        assert_eq!(answer_bytes(&[]), 0);
        assert_eq!(answer_bytes(&[record(50)]), 256 + 50 * 17);
        assert_eq!(answer_bytes(&[record(0), record(0)]), 512);
    }
}
