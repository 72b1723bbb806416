//! Reading answers with a size bound, and checking an upload answer against its request.

use tacit_shared::api::{ErrorBody, UploadResponse, hex};

use super::UploadError;

/// Largest success body accepted. A full batch of 256 results is about 30 KiB, so
/// this only stops a broken or hostile server from exhausting the phone's memory.
pub(super) const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Largest error body read; longer ones are cut (they are only diagnostics).
pub(crate) const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// How much of a non-JSON error body is kept in [`UploadError::Refused`].
const MAX_ERROR_TEXT_CHARS: usize = 512;

/// Reads the body, failing with [`UploadError::ResponseTooLarge`] past `limit` bytes
/// (checked against `Content-Length` first, then while streaming, since the header
/// may be absent or lie).
pub(crate) async fn read_bounded(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, UploadError> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(UploadError::ResponseTooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(super::transport_error)? {
        if body.len() + chunk.len() > limit {
            return Err(UploadError::ResponseTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error answer's body as an [`ErrorBody`]: parsed if it is one, otherwise its
/// (truncated, lossy UTF-8) text.
pub(crate) fn error_body(bytes: &[u8]) -> ErrorBody {
    serde_json::from_slice::<ErrorBody>(bytes).unwrap_or_else(|_| ErrorBody {
        error: String::from_utf8_lossy(bytes)
            .chars()
            .take(MAX_ERROR_TEXT_CHARS)
            .collect(),
        code: String::new(),
    })
}

/// Parses a success body and checks that it answers this request: one result per
/// envelope, `index` equal to the position, and, where both are known, the result's
/// envelope id equal to the id in the envelope sent at that position. Anything else
/// could acknowledge envelopes the server never stored.
pub(super) fn parse_upload_response(
    bytes: &[u8],
    sent_ids: &[Option<[u8; 16]>],
) -> Result<UploadResponse, UploadError> {
    let response: UploadResponse = serde_json::from_slice(bytes)
        .map_err(|e| UploadError::MalformedResponse(format!("not an upload response: {e}")))?;
    if response.results.len() != sent_ids.len() {
        return Err(UploadError::MalformedResponse(format!(
            "{} results for {} envelopes",
            response.results.len(),
            sent_ids.len()
        )));
    }
    for (position, (result, sent)) in response.results.iter().zip(sent_ids).enumerate() {
        if result.index != position {
            return Err(UploadError::MalformedResponse(format!(
                "result {position} has index {}",
                result.index
            )));
        }
        if let (Some(got), Some(sent)) = (&result.envelope_id, sent) {
            let expected = hex(sent);
            if !got.eq_ignore_ascii_case(&expected) {
                return Err(UploadError::MalformedResponse(format!(
                    "result {position} is for envelope {got}, not {expected}"
                )));
            }
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_answers_must_match_the_request() {
        let ids = [Some([1u8; 16]), None];
        let ok = format!(
            r#"{{"results":[{{"index":0,"envelope_id":"{}","status":"stored"}},
                {{"index":1,"status":"rejected","reason":"bad_magic"}}]}}"#,
            "01".repeat(16)
        );
        assert_eq!(
            parse_upload_response(ok.as_bytes(), &ids)
                .unwrap()
                .results
                .len(),
            2
        );
        for bad in [
            "not json".to_string(),
            r#"{"results":[{"index":0,"status":"stored"}]}"#.into(),
            r#"{"results":[{"index":1,"status":"stored"},{"index":0,"status":"stored"}]}"#.into(),
            r#"{"results":[{"index":0,"status":"lost"},{"index":1,"status":"stored"}]}"#.into(),
            ok.replace(&"01".repeat(16), &"02".repeat(16)),
        ] {
            assert!(
                matches!(
                    parse_upload_response(bad.as_bytes(), &ids),
                    Err(UploadError::MalformedResponse(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_bodies_are_parsed_or_kept_as_text() {
        let b = error_body(br#"{"error":"unknown device","code":"unknown_device"}"#);
        assert_eq!(b.code, "unknown_device");
        let b = error_body("<html>nope</html>".repeat(100).as_bytes());
        assert_eq!(b.code, "");
        assert_eq!(b.error.chars().count(), MAX_ERROR_TEXT_CHARS);
    }
}
