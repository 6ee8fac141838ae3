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
use crate::request_url::RequestUrl;

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

/// GET /api/v1/models: a page of the models the query's filters admit, in its order,
/// with the documented `pagination` and OpenRouter's `total_count` and `links.next`.
pub async fn list(
    State(app): Catalog,
    RawQuery(query): RawQuery,
    url: RequestUrl,
    conditional: Conditional,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let limit = params.limit("limit", 50)?;
    let offset = params.offset("offset")?;
    let filters = params.model_query()?;
    let (index, answer) = index(&app).await?;
    let matched = index.select(&filters, now_secs());
    let total = matched.len();
    let page = matched.iter().copied().skip(offset).take(limit);
    let has_more = offset.saturating_add(limit) < total;
    let next = has_more.then(|| format!("{}?{}", url.0, params.with_page(offset + limit, limit)));
    let mut body = String::with_capacity(limit.min(total) * 2048 + 256);
    body.push_str("{\"data\":");
    push_models(&mut body, page);
    let rest = json!({
        "pagination": {"total": total, "limit": limit, "offset": offset, "hasMore": has_more},
        "total_count": total,
        "links": {"next": next},
    });
    // The rest of the object, after the data: `{"data":[...],"pagination":...}`.
    let rest = rest.to_string();
    body.push(',');
    body.push_str(rest.strip_prefix('{').unwrap_or(&rest));
    Ok(answer.respond(body, &conditional))
}

/// GET /api/v1/models/count: how many models the query's filters admit, in
/// OpenRouter's shape.
pub async fn count(
    State(app): Catalog,
    RawQuery(query): RawQuery,
    conditional: Conditional,
) -> Result<Response, ApiError> {
    let filters = Params::parse(query.as_deref()).model_query()?;
    let (index, answer) = index(&app).await?;
    let count = index.select(&filters, now_secs()).len();
    Ok(answer.respond(json!({"data": {"count": count}}).to_string(), &conditional))
}

/// GET /api/v1/model/{author}/{slug}: one model, in OpenRouter's shape `{data: model}`.
pub async fn model_by_slug(
    State(app): Catalog,
    PathParam((author, slug)): PathParam<(String, String)>,
    conditional: Conditional,
) -> Result<Response, ApiError> {
    let (index, answer) = index(&app).await?;
    let id = format!("{author}/{slug}");
    let Some(model) = index.get(&id) else {
        return Err(no_model(&id));
    };
    let mut body = String::with_capacity(model.json.get().len() + 10);
    body.push_str("{\"data\":");
    body.push_str(model.json.get());
    body.push('}');
    Ok(answer.respond(body, &conditional))
}

fn no_model(id: &str) -> ApiError {
    ApiError::not_found(format!("No model with id {:?}", quote(id)))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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

/// GET /api/v1/models/{id}, /{id}/parameters, /{id}/pricing, /{id}/endpoints. Ids hold
/// `/`, `:` and `.` (`meta-llama/llama-3.1-8b-instruct:free`), so the whole rest of the
/// path is read and an exact id wins over a suffix. The model itself also carries
/// OpenAI's `id`, `object`, `created` and `owned_by` at the top level, for an OpenAI
/// SDK's `models.retrieve`.
pub async fn model(
    State(app): Catalog,
    PathParam(rest): PathParam,
    conditional: Conditional,
) -> Result<Response, ApiError> {
    let (index, answer) = index(&app).await?;
    let rest = rest.trim_end_matches('/');
    if let Some(model) = index.get(rest) {
        let top = json!({"id": model.id, "object": "model", "created": model.created,
                         "owned_by": model.provider()})
        .to_string();
        let mut body = String::with_capacity(model.json.get().len() + top.len() + 10);
        body.push_str("{\"data\":");
        body.push_str(model.json.get());
        body.push(',');
        body.push_str(top.strip_prefix('{').unwrap_or(&top));
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
    if let Some(model) = found("/endpoints") {
        let (body, state) = app.catalog.endpoints(&model.id).await?;
        let answer = CatalogAnswer::new(state, app.config.catalog.ttl);
        return Ok(answer.respond(body, &conditional));
    }
    let id = ["/parameters", "/pricing", "/endpoints"]
        .iter()
        .find_map(|suffix| rest.strip_suffix(suffix))
        .unwrap_or(rest);
    Err(no_model(id))
}
