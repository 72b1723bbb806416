//! Face images in a fresh envelope become face records before anything is stored: the
//! face factor finds the face and answers its embedding, quality and replay hash; the
//! gateway keeps that record and forgets the image (it is never written to the store,
//! a job file or a log).
//!
//! A usable face that is a near-duplicate of one the user sent in an earlier session (a
//! replayed frame: within [`REPLAY_BITS`] of a stored record's hash and captured at least
//! [`SESSION_GAP_MS`] apart) is dropped and counted, like an image without a face. The
//! face factor itself catches an enrolment image presented again (its template keeps
//! their hashes).

use tacit_shared::payload::{FactorKind, FeatureRecord, Payload};
use tacit_shared::schema::{FACE_EMBEDDING_DIM, FACE_HASH_CHUNKS, FACE_V1};

use crate::error::ApiError;
use crate::scoring::{Embedded, FactorError, read_windows};
use crate::state::{AppState, now_ms};

/// Hashes at most this many bits apart are one frame presented twice (measured on ORL:
/// no two captures of one person that close; examples/face-factor/README.md).
pub const REPLAY_BITS: u32 = 2;
/// Captures closer in time than this are one session, whose frames may be
/// near-identical (a burst from a still camera): they are not compared.
pub const SESSION_GAP_MS: u64 = 10 * 60 * 1000;
/// Stored envelopes read for the replay comparison (the user's newest).
const REPLAY_LOOKBACK_ENVELOPES: u32 = 128;

/// Why an envelope with face images is rejected (its stable code).
pub(crate) type Rejection = &'static str;

fn hash_of(values: &[f32]) -> u64 {
    values[FACE_EMBEDDING_DIM + 1..FACE_EMBEDDING_DIM + 1 + FACE_HASH_CHUNKS]
        .iter()
        .fold(0u64, |h, &c| (h << 16) | u64::from(c as u16))
}

/// Replaces `payload`'s face images by face records. `Ok(Err(code))`: the envelope is
/// rejected (`face_not_served`, `face_refused`; `face_replay` or `no_face` when nothing
/// usable is left);
/// `Err`: the whole request fails and is sent again (the face factor cannot answer now,
/// 503 with `Retry-After`).
pub(crate) async fn embed_faces(
    st: &AppState,
    user_id: &str,
    payload: &mut Payload,
) -> Result<Result<(), Rejection>, ApiError> {
    if payload.face_images.is_empty() {
        return Ok(Ok(()));
    }
    let Some(factor) = st.factors.iter().find(|f| f.records == FactorKind::Face) else {
        return Ok(Err("face_not_served"));
    };
    let answers = match factor.client.embed_images(&payload.face_images).await {
        Ok(a) if a.len() == payload.face_images.len() => a,
        Ok(_) => {
            return Err(ApiError::unavailable(
                "the face factor answered the wrong count",
            ));
        }
        Err(FactorError::Unavailable(m)) => {
            tracing::warn!(factor = %factor.name, error = %m, "face factor unavailable; upload refused for now");
            return Err(ApiError::unavailable("the face factor is unavailable"));
        }
        Err(FactorError::Refused(m)) => {
            tracing::warn!(factor = %factor.name, error = %m, "face factor refused the images");
            return Ok(Err("face_refused"));
        }
    };
    let images = std::mem::take(&mut payload.face_images);
    let mut earlier: Option<Vec<(u64, u64)>> = None;
    let mut replays = 0usize;
    for (image, answer) in images.iter().zip(answers) {
        let values = match answer {
            Embedded::Face(v) => v,
            Embedded::Refused(reason) => {
                st.metrics
                    .count("tacit_face_images_total", &[("outcome", reason)], 1);
                continue;
            }
        };
        let hash = hash_of(&values);
        if earlier.is_none() {
            let since = now_ms().saturating_sub(st.replay.max_age_ms);
            let windows =
                read_windows(st.store.as_ref(), user_id, since, REPLAY_LOOKBACK_ENVELOPES).await?;
            earlier = Some(
                windows
                    .into_iter()
                    .filter(|w| w.kind == FactorKind::Face && w.values.len() > FACE_EMBEDDING_DIM)
                    .map(|w| (w.start_ms, hash_of(&w.values)))
                    .collect(),
            );
        }
        let replayed = earlier.iter().flatten().any(|&(at, h)| {
            at.abs_diff(image.captured_at_ms) >= SESSION_GAP_MS
                && (h ^ hash).count_ones() <= REPLAY_BITS
        });
        if replayed {
            tracing::warn!(
                user = %user_id,
                "face image is a near-duplicate of one from an earlier session; dropped as a replay"
            );
            st.metrics.count(
                "tacit_face_images_total",
                &[("outcome", "replay".into())],
                1,
            );
            replays += 1;
            continue;
        }
        st.metrics
            .count("tacit_face_images_total", &[("outcome", "face".into())], 1);
        payload.records.push(FeatureRecord {
            factor: FactorKind::Face,
            schema_version: FACE_V1,
            window_start_ms: image.captured_at_ms,
            window_ms: 0,
            context: None,
            values,
        });
    }
    Ok(if !payload.records.is_empty() {
        Ok(())
    } else if replays > 0 {
        Err("face_replay")
    } else {
        Err("no_face")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_read_back_from_its_chunks() {
        let mut v = vec![0.0f32; FACE_EMBEDDING_DIM + 1];
        v.extend([0xFFFF as f32, 0x1234 as f32, 0.0, 0xABCD as f32]);
        assert_eq!(hash_of(&v), 0xFFFF_1234_0000_ABCD);
    }
}
