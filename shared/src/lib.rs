//! The library every llm-proxy function links. It knows nothing of Lambda beyond the
//! request-context types the client address is read from: the same routes run on
//! Lambda and in the local gateway. The contract it implements is in `docs/`.
//!
//! # Layout
//!
//! Each module is one idea; dependencies point down this list, never up.
//!
//! - [`config`]: every setting, read once, grouped by its user.
//! - [`error`]: `ApiError`, the one error shape on the wire, and where failed requests
//!   are logged.
//! - [`routes`], [`header_names`]: the paths and header names more than one module
//!   must agree on.
//! - [`client_ip`]: who the caller is, from the Lambda request context or the socket.
//! - [`path_param`]: a path parameter whose rejection answers in the error shape.
//! - [`json_body`], [`validation`]: reading a chat body and checking the fields the
//!   proxy must understand.
//! - [`openrouter`]: the pooled client for OpenRouter, and the mapping of its errors.
//! - [`sse`]: relaying OpenRouter's event stream event by event.
//! - [`relay`]: the table of inference operations and the one relay every route and
//!   transport uses.
//! - [`catalog`]: the cached, indexed model catalogue.
//! - [`rate_limit`]: per-client limits over a memory or DynamoDB counter store.
//! - [`tls`], [`aws`]: the one TLS stack, and the AWS SDK clients' HTTPS client and settings.
//! - [`secrets`]: the keys read from Secrets Manager at start-up.
//! - [`state`]: what a container builds once at init.
//! - [`layers`]: the tower layers every HTTP function shares.
//! - [`websocket`]: the WebSocket protocol: messages, and answers as messages.
//! - [`telemetry`], [`metrics`]: structured logs, and CloudWatch metrics beside them.

/// Every binary that links this library allocates with mimalloc: with glibc's
/// allocator, malloc and free were a fifth of the gateway's instructions per request
/// (BENCHMARKS.md, "Where the time went").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod aws;
pub mod catalog;
pub mod client_ip;
pub mod config;
pub mod error;
pub mod header_names;
pub mod journal;
pub mod json_body;
pub mod layers;
pub mod metrics;
pub mod openrouter;
pub mod path_param;
pub mod rate_limit;
pub mod relay;
pub mod request_id;
pub mod routes;
pub mod secrets;
pub mod sse;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod validation;
pub mod websocket;

pub use client_ip::ClientIp;
pub use config::Config;
pub use error::ApiError;
pub use json_body::JsonBody;
pub use openrouter::OpenRouterClient;
pub use state::AppState;
