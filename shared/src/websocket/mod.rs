//! The WebSocket protocol (`docs/websocket.md`), independent of where it runs: the
//! messages both ways (`message`) and how OpenRouter's answer becomes
//! `inference_response` messages (`answer`). The handlers that run it on API Gateway
//! and in the local gateway live in `functions/websocket`.

pub mod answer;
pub mod message;
