//! `PathParam`: a route's path parameters, percent-decoded, with axum's rejection
//! (a path that does not decode to UTF-8, `/api/v1/models/%ff`) answered in the shape of
//! `docs/errors.md` rather than axum's plain text.

use axum::extract::{FromRequestParts, Path};
use http::request::Parts;

use crate::error::ApiError;

/// One parameter (`PathParam<String>`) or several (`PathParam<(String, String)>`).
pub struct PathParam<T = String>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|_| {
                ApiError::validation("path", "The path must be valid UTF-8 once percent-decoded")
            })
    }
}
