//! The signed list of the backend's HPKE keys, for phones to learn a rotated key.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use tacit_shared::keylist::SignedKeyList;

use crate::error::ApiError;
use crate::state::AppState;

/// The root-signed list of the HPKE keys phones may seal to (`keys publish` writes it).
/// Phones verify it against the root public key they pin; the gateway only relays it.
#[utoipa::path(get, path = "/v1/keys", responses(
    (status = 200, description = "the signed key list", body = SignedKeyList),
    (status = 404, description = "no key list published (phones keep their pinned key)", body = tacit_shared::api::ErrorBody)))]
pub async fn key_list(State(st): State<AppState>) -> Result<Json<SignedKeyList>, ApiError> {
    st.keys.signed_list().cloned().map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_key_list",
            "no key list is published (`tacit-backend keys publish`)",
        )
    })
}
