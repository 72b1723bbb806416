//! `POST /v1/authenticate`: the signed question "is this still the enrolled person?",
//! optionally carrying the freshest sealed envelopes so the answer uses them.

use tacit_shared::api::{
    AuthenticateRequest, AuthenticateResponse, EnvelopeStatus, authenticate_message_with_nonce,
    b64_encode,
};
use tacit_shared::identity::DeviceSigner;

use super::answer::read_answer;
use super::clock::ServerClock;
use super::{ClientConfig, ClientError};
use crate::queue::{Outbox, QueuedEnvelope};

/// Largest answer read (a few factors and at most 16 envelope results).
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Sends one signed authentication request with `envelopes` attached (and the relying
/// party's `nonce`, signed with the rest), then settles those envelopes in the outbox by
/// the server's per-envelope results.
#[allow(clippy::too_many_arguments)]
pub(super) async fn authenticate(
    http: &reqwest::Client,
    cfg: &ClientConfig,
    clock: &ServerClock,
    signer: &dyn DeviceSigner,
    outbox: &Outbox,
    request_ms: u64,
    envelopes: Vec<QueuedEnvelope>,
    nonce: Option<&str>,
) -> Result<AuthenticateResponse, ClientError> {
    let key = signer.public_key();
    let device_id = key.device_id();
    let bytes: Vec<Vec<u8>> = envelopes.iter().map(|e| e.bytes.clone()).collect();
    let signature = signer
        .sign(&authenticate_message_with_nonce(
            &device_id.0,
            request_ms,
            &bytes,
            nonce,
        ))
        .map_err(|e| ClientError::KeyStore(e.to_string()))?;
    let body = AuthenticateRequest {
        device_id: device_id.to_hex(),
        request_ms,
        envelopes: bytes.iter().map(|b| b64_encode(b)).collect(),
        signature: b64_encode(&signature),
        nonce: nonce.map(str::to_owned),
    };
    let json = serde_json::to_vec(&body).map_err(|e| ClientError::Config(e.to_string()))?;
    let resp = http
        .post(format!("{}/v1/authenticate", cfg.backend_url))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(json)
        .send()
        .await
        .map_err(|e| ClientError::Network(crate::upload::error_chain(&e)))?;
    clock.observe(resp.headers());
    let answer = read_answer(resp, MAX_ANSWER_BYTES, "authentication").await?;
    let r: AuthenticateResponse = serde_json::from_slice(&answer)
        .map_err(|e| ClientError::Server(format!("bad authentication answer: {e}")))?;
    if r.verdict.is_empty() {
        return Err(ClientError::Server(
            "authentication answer carries no verdict".into(),
        ));
    }
    if r.envelopes.len() != envelopes.len() {
        return Err(ClientError::Server(format!(
            "authentication answer has {} envelope results for {} envelopes",
            r.envelopes.len(),
            envelopes.len()
        )));
    }
    // Settle the attached envelopes exactly as an upload would.
    let mut acknowledged = Vec::new();
    for (result, e) in r.envelopes.iter().zip(&envelopes) {
        match result.status {
            EnvelopeStatus::Stored | EnvelopeStatus::Duplicate => acknowledged.push(e.envelope_id),
            EnvelopeStatus::Rejected => {
                outbox.reject(
                    &[e.envelope_id],
                    result.reason.as_deref().unwrap_or("unspecified"),
                )?;
            }
        }
    }
    outbox.acknowledge(&acknowledged)?;
    Ok(r)
}
