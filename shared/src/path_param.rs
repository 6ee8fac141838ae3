//! `PathParam`: a route's one path parameter, percent-decoded, with axum's rejection
//! (a path that does not decode to UTF-8, `/api/v1/models/%ff`) answered in the shape of
//! `docs/errors.md` rather than axum's plain text.

use axum::extract::{FromRequestParts, Path};
use http::request::Parts;

use crate::error::ApiError;

pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|_| {
                ApiError::validation("path", "The path must be valid UTF-8 once percent-decoded")
            })
    }
}
