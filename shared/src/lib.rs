//! The library every llm-proxy function links. It knows nothing of Lambda beyond the
//! request-context types the client IP is read from: the same routes run on Lambda
//! and in the local gateway.

pub mod catalog;
pub mod client_ip;
pub mod config;
pub mod error;
pub mod json_body;
pub mod layers;
pub mod openrouter;
pub mod rate_limit;
pub mod routes;
pub mod sse;
pub mod state;
pub mod telemetry;
pub mod validation;

pub use client_ip::ClientIp;
pub use config::Config;
pub use error::ApiError;
pub use json_body::JsonBody;
pub use openrouter::OpenRouterClient;
pub use state::AppState;
