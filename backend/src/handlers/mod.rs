//! HTTP handlers, one file per concern. Every input is bounded and validated before
//! use; every error is a JSON `ApiError`.

pub mod admin;
pub mod authenticate;
pub mod devices;
pub mod export;
pub(crate) mod faces;
pub mod health;
pub mod keys;
pub mod templates;
pub mod uploads;
pub mod verdict;

use tacit_shared::identity::{DevicePublicKey, SignatureAlgorithm};

use crate::store::DeviceRow;

use axum::extract::rejection::JsonRejection;

use crate::error::ApiError;

/// Why a device may not upload or authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRefusal {
    /// No such device.
    Unknown,
    /// The device was revoked (by an admin, or as a cloned phone).
    Revoked,
    /// The stored key of the device does not parse: the server's fault (only a broken
    /// migration or outside tampering with the database causes it), answered as an
    /// internal error so that phones retry rather than register anew or drop data.
    BrokenStoredKey,
}

impl DeviceRefusal {
    /// The stable code of the refusal, in answers and metrics.
    pub fn code(self) -> &'static str {
        match self {
            DeviceRefusal::Unknown => "unknown_device",
            DeviceRefusal::Revoked => "device_revoked",
            DeviceRefusal::BrokenStoredKey => "internal",
        }
    }
}

/// The one check of a device before anything it signed is believed: known, not
/// revoked, and its stored key usable for verifying.
pub fn active_device(
    row: Option<&DeviceRow>,
) -> Result<(&DeviceRow, DevicePublicKey), DeviceRefusal> {
    let device = row.ok_or(DeviceRefusal::Unknown)?;
    if device.revoked {
        return Err(DeviceRefusal::Revoked);
    }
    let key = SignatureAlgorithm::from_tag(device.algorithm)
        .and_then(|a| DevicePublicKey::new(a, &device.public_key).ok())
        .ok_or_else(|| {
            tracing::error!(device = %tacit_shared::api::hex(&device.device_id), "stored device key does not parse");
            DeviceRefusal::BrokenStoredKey
        })?;
    Ok((device, key))
}

/// Maps axum's JSON rejections (syntax, wrong shape, wrong content type, too large) to
/// 4xx JSON errors.
pub fn json_error(e: JsonRejection) -> ApiError {
    use axum::http::StatusCode;
    let status = e.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        _ => "malformed_json",
    };
    // JSON that does not fit the request type is a 400 like any other bad body (axum
    // says 422); a missing JSON content type stays 415 and too large a body 413.
    let status = match status {
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE => status,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, code, e.body_text())
}

/// Equality in time independent of where the inputs differ (lengths may leak).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn constant_time_eq_works() {
        assert!(super::constant_time_eq(b"abc", b"abc"));
        assert!(!super::constant_time_eq(b"abc", b"abd"));
        assert!(!super::constant_time_eq(b"abc", b"ab"));
    }
}
