//! The catalogue endpoints under /api/v1/models (`docs/http-api.md`).
//!
//! Answers are written from the pre-serialised models of the index, so a page of 50
//! costs 50 copies, whatever the catalogue's size.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use llm_proxy_shared::catalog::{Model, ModelIndex};
use llm_proxy_shared::error::quote;
use llm_proxy_shared::path_param::PathParam;
use llm_proxy_shared::{ApiError, AppState};
use serde_json::{Value, json};

use crate::cached::{CatalogAnswer, Conditional};
use crate::query::Params;

type Catalog = State<Arc<AppState>>;

async fn index(app: &AppState) -> Result<(Arc<ModelIndex>, CatalogAnswer), ApiError> {
    let view = app.catalog.get().await?;
    let answer = CatalogAnswer::new(view.state, view.fresh_for);
    Ok((view.index, answer))
}

/// Appends models' stored JSON as a JSON array.
fn push_models<'a>(out: &mut String, models: impl Iterator<Item = &'a Model>) {
    out.push('[');
    for (i, model) in models.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(model.json.get());
    }
    out.push(']');
}

/// GET /api/v1/models?provider=&search=&limit=&offset=
pub async fn list(
    State(app): Catalog,
    RawQuery(query): RawQuery,
    conditional: Conditional,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let limit = params.limit("limit", 50)?;
    let offset = params.offset("offset")?;
    let provider = params.text("provider").map(str::to_lowercase);
    let search = params.text("search").map(str::to_lowercase);
    let (index, answer) = index(&app).await?;

    let candidates: Box<dyn Iterator<Item = &Model>> = match provider.as_deref() {
        Some(p) => match index.by_provider(p) {
            Some(models) => Box::new(models),
            None => Box::new(std::iter::empty()),
        },
        None => Box::new(index.all()),
    };
    let mut total = 0usize;
    let mut page = Vec::with_capacity(limit);
    for model in candidates.filter(|m| search.as_deref().is_none_or(|s| m.matches(s))) {
        if total >= offset && page.len() < limit {
            page.push(model);
        }
        total += 1;
    }
    let mut body =
        String::with_capacity(page.iter().map(|m| m.json.get().len() + 1).sum::<usize>() + 128);
    body.push_str("{\"data\":");
    push_models(&mut body, page.into_iter());
    let pagination = json!({
        "total": total, "limit": limit, "offset": offset, "hasMore": offset.saturating_add(limit) < total,
    });
    body.push_str(",\"pagination\":");
    body.push_str(&pagination.to_string());
    body.push('}');
    Ok(answer.respond(body, &conditional))
}

/// GET /api/v1/models/top?limit= — largest context first, ties by id.
pub async fn top(
    State(app): Catalog,
    RawQuery(query): RawQuery,
    conditional: Conditional,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let limit = params.limit("limit", 10)?;
    let (index, answer) = index(&app).await?;
    let data: Vec<Value> = index
        .by_context_length()
        .take(limit)
        .map(|m| json!({"id": m.id, "name": m.name, "context_length": m.context_length, "pricing": m.pricing}))
        .collect();
    Ok(answer.respond(json!({ "data": data }).to_string(), &conditional))
}

/// GET /api/v1/models/search?q=&limit= — case-insensitive over id, name and description.
pub async fn search(
    State(app): Catalog,
    RawQuery(query): RawQuery,
    conditional: Conditional,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let Some(q) = params.text("q") else {
        return Err(ApiError::validation(
            "q",
            "The search query q is required, e.g. ?q=code",
        ));
    };
    let limit = params.limit("limit", 20)?;
    let needle = q.to_lowercase();
    let (index, answer) = index(&app).await?;
    let mut total = 0usize;
    let mut data = Vec::with_capacity(limit);
    for model in index.all().filter(|m| m.matches(&needle)) {
        if data.len() < limit {
            data.push(
                json!({"id": model.id, "name": model.name, "description": model.description}),
            );
        }
        total += 1;
    }
    Ok(answer.respond(
        json!({ "data": data, "query": q, "total": total }).to_string(),
        &conditional,
    ))
}

/// GET /api/v1/models/providers
pub async fn providers(
    State(app): Catalog,
    conditional: Conditional,
) -> Result<Response, ApiError> {
    let (index, answer) = index(&app).await?;
    let data: Vec<&str> = index.providers().collect();
    Ok(answer.respond(json!({ "data": data }).to_string(), &conditional))
}

/// GET /api/v1/models/providers/{provider}
pub async fn provider(
    State(app): Catalog,
    PathParam(provider): PathParam,
    conditional: Conditional,
) -> Result<Response, ApiError> {
    let (index, answer) = index(&app).await?;
    let wanted = provider.to_lowercase();
    let Some(models) = index.by_provider(&wanted) else {
        return Err(ApiError::not_found(format!(
            "No provider named {:?}",
            quote(&provider)
        )));
    };
    let data: Vec<Value> = models
        .map(|m| json!({"id": m.id, "name": m.name, "context_length": m.context_length}))
        .collect();
    Ok(answer.respond(
        json!({ "data": data, "provider": wanted }).to_string(),
        &conditional,
    ))
}

/// GET /api/v1/models/{id}, /{id}/parameters, /{id}/pricing. Ids hold `/`, `:` and `.`
/// (`meta-llama/llama-3.1-8b-instruct:free`), so the whole rest of the path is read
/// and an exact id wins over a suffix.
pub async fn model(
    State(app): Catalog,
    PathParam(rest): PathParam,
    conditional: Conditional,
) -> Result<Response, ApiError> {
    let (index, answer) = index(&app).await?;
    let rest = rest.trim_end_matches('/');
    if let Some(model) = index.get(rest) {
        let mut body = String::with_capacity(model.json.get().len() + 10);
        body.push_str("{\"data\":");
        body.push_str(model.json.get());
        body.push('}');
        return Ok(answer.respond(body, &conditional));
    }
    let found = |suffix: &str| rest.strip_suffix(suffix).and_then(|id| index.get(id));
    if let Some(model) = found("/parameters") {
        let body = json!({"data": {"model": model.id, "supported_parameters": model.supported_parameters}});
        return Ok(answer.respond(body.to_string(), &conditional));
    }
    if let Some(model) = found("/pricing") {
        let body = json!({"data": {"model": model.id, "pricing": model.pricing}});
        return Ok(answer.respond(body.to_string(), &conditional));
    }
    let id = rest
        .strip_suffix("/parameters")
        .or_else(|| rest.strip_suffix("/pricing"))
        .unwrap_or(rest);
    Err(ApiError::not_found(format!(
        "No model with id {:?}",
        quote(id)
    )))
}
