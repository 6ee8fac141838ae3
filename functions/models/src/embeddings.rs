//! GET /api/v1/embeddings/models: OpenRouter's list of embeddings models (which its
//! catalogue does not carry), cached like the catalogue and paged here as OpenRouter
//! pages it: the whole list when neither `offset` nor `limit` is given, else `limit`
//! (500 by default, at most 1,000) from `offset`.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use llm_proxy_shared::error::{UpstreamError, quote};
use llm_proxy_shared::{ApiError, AppState};
use serde_json::value::RawValue;

use crate::cached::{CatalogAnswer, Conditional};
use crate::query::Params;

const DEFAULT_LIMIT: usize = 500;
const MAX_LIMIT: usize = 1000;

pub async fn list(
    State(app): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    conditional: Conditional,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let page = match (params.text("offset"), params.text("limit")) {
        (None, None) => None,
        (_, limit) => Some((params.offset("offset")?, limit_of(limit)?)),
    };
    let (body, state) = app.catalog.embedding_models().await?;
    let answer = CatalogAnswer::new(state, app.config.catalog.ttl);
    let Some((offset, limit)) = page else {
        return Ok(answer.respond(body, &conditional));
    };
    #[derive(serde::Deserialize)]
    struct Listing<'a> {
        #[serde(borrow)]
        data: Vec<&'a RawValue>,
    }
    let listing: Listing<'_> = serde_json::from_slice(&body).map_err(|_| {
        ApiError::from(UpstreamError::bad_gateway(
            "OpenRouter's list of embeddings models could not be read",
        ))
    })?;
    let page: Vec<&RawValue> = listing.data.into_iter().skip(offset).take(limit).collect();
    let body = serde_json::json!({ "data": page }).to_string();
    Ok(answer.respond(body, &conditional))
}

fn limit_of(given: Option<&str>) -> Result<usize, ApiError> {
    let Some(given) = given else {
        return Ok(DEFAULT_LIMIT);
    };
    given
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::validation(
                "limit",
                format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT}, got {:?}",
                    quote(given)
                ),
            )
        })
}
