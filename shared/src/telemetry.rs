//! Structured logs: JSON lines on Lambda (CloudWatch) and in production, compact
//! text on a developer's terminal. What is logged is chosen at each call site so that
//! prompts, answers, client addresses and the key never reach a log.

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, Environment, LogLevel};

/// Logs, and the metrics beside them (`crate::metrics`).
pub fn init(config: &Config) {
    crate::metrics::init(&config.metrics);
    let level = match config.log_level {
        LogLevel::Debug => Level::DEBUG,
        LogLevel::Info => Level::INFO,
        LogLevel::Warn => Level::WARN,
        LogLevel::Error => Level::ERROR,
    };
    // Dependencies' debug output includes request details; keep them to warnings.
    let filter = Targets::new()
        .with_default(level)
        .with_target("hyper", Level::WARN)
        .with_target("hyper_util", Level::WARN)
        .with_target("reqwest", Level::WARN)
        .with_target("rustls", Level::WARN)
        .with_target("h2", Level::WARN)
        .with_target("aws_smithy_runtime", Level::WARN)
        .with_target("aws_smithy_runtime_api", Level::WARN)
        .with_target("aws_config", Level::WARN)
        .with_target("aws_sdk_dynamodb", Level::WARN)
        .with_target("lambda_runtime", Level::WARN)
        .with_target("lambda_http", Level::WARN);
    let on_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests building several apps in one process) is harmless.
    let _ = if on_lambda || config.environment == Environment::Production {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(false)
                    .with_target(false),
            )
            .try_init()
    } else {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .compact()
                    .with_ansi(ansi)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
}
