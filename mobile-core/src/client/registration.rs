//! Device registration with the backend (`POST /v1/devices`) and its local record.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tacit_shared::api::{PublicKeyJson, RegisterDeviceRequest, RegisterDeviceResponse};
use tacit_shared::identity::DeviceSigner;

use super::answer::read_answer;
use super::clock::ServerClock;
use super::keystore::write_private;
use super::{ClientConfig, ClientError};

const FILE: &str = "registration.json";

/// The device's registration, stored in the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// Device id (hex).
    pub device_id: String,
    /// User the device belongs to.
    pub user_id: String,
}

impl Registration {
    pub(super) fn load(dir: &Path) -> Result<Option<Self>, ClientError> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ClientError::Storage(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ClientError::Storage(format!("{}: {e}", path.display()))),
        }
    }

    pub(super) fn store(&self, dir: &Path) -> Result<(), ClientError> {
        let path = dir.join(FILE);
        let json = serde_json::to_vec(self).map_err(|e| ClientError::Storage(e.to_string()))?;
        write_private(&path, &json)
            .map_err(|e| ClientError::Storage(format!("{}: {e}", path.display())))
    }
}

/// Largest registration answer read (two ids).
const MAX_ANSWER_BYTES: usize = 16 * 1024;

pub(super) async fn register(
    http: &reqwest::Client,
    cfg: &ClientConfig,
    clock: &ServerClock,
    signer: &dyn DeviceSigner,
    token: &str,
) -> Result<Registration, ClientError> {
    if token.is_empty() || token.len() > 1024 {
        return Err(ClientError::Config(
            "enrolment token must be 1..=1024 bytes".into(),
        ));
    }
    let key = signer.public_key();
    let body = RegisterDeviceRequest {
        enrolment_token: token.to_string(),
        public_key: PublicKeyJson::from_key(&key),
    };
    let json = serde_json::to_vec(&body).map_err(|e| ClientError::Config(e.to_string()))?;
    let resp = http
        .post(format!("{}/v1/devices", cfg.backend_url))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(json)
        .send()
        .await
        .map_err(|e| ClientError::Network(crate::upload::error_chain(&e)))?;
    clock.observe(resp.headers());
    let bytes = read_answer(resp, MAX_ANSWER_BYTES, "registration").await?;
    let r: RegisterDeviceResponse = serde_json::from_slice(&bytes)
        .map_err(|e| ClientError::Server(format!("bad registration answer: {e}")))?;
    if r.device_id != key.device_id().to_hex() {
        return Err(ClientError::Server(
            "server registered a different device id".into(),
        ));
    }
    Ok(Registration {
        device_id: r.device_id,
        user_id: r.user_id,
    })
}
