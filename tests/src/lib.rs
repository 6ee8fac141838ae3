//! Test support for llm-proxy: the mock OpenRouter and a harness that runs the real
//! local gateway. The end-to-end tests themselves live in `tests/`.

pub mod dynamo;
pub mod fixtures;
pub mod gateway;
pub mod lambda;
pub mod mock;
pub mod process;

pub use gateway::Gateway;
pub use mock::{Behaviour, MockOpenRouter, ModelsBehaviour};
