//! Reading the gateway's answers to the client's own calls (registration,
//! authentication) with the same bounds as upload answers.

use std::time::SystemTime;

use reqwest::header::RETRY_AFTER;

use super::ClientError;
use crate::upload::UploadError;
use crate::upload::parse_retry_after;
use crate::upload::response::{MAX_ERROR_BODY_BYTES, error_body, read_bounded};

/// The body of a success answer of at most `limit` bytes; an error answer becomes
/// [`ClientError::Refused`] with `what`, the HTTP status and the server's code.
pub(super) async fn read_answer(
    resp: reqwest::Response,
    limit: usize,
    what: &'static str,
) -> Result<Vec<u8>, ClientError> {
    let status = resp.status();
    let ok = status.is_success();
    let retry_after_ms = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let bytes = read_bounded(resp, if ok { limit } else { MAX_ERROR_BODY_BYTES })
        .await
        .map_err(|e| match e {
            UploadError::ResponseTooLarge { limit } if ok => {
                ClientError::Server(format!("{what} answer larger than {limit} bytes"))
            }
            UploadError::ResponseTooLarge { limit } => ClientError::Refused {
                what,
                status: status.as_u16(),
                code: "unreadable".into(),
                message: format!("error body over {limit} bytes"),
                retry_after_ms,
            },
            other => ClientError::Network(other.to_string()),
        })?;
    if !ok {
        let body = error_body(&bytes);
        return Err(ClientError::Refused {
            what,
            status: status.as_u16(),
            code: body.code,
            message: body.error,
            retry_after_ms,
        });
    }
    Ok(bytes)
}
