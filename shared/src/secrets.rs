//! Secrets read at start-up (`docs/deployment.md`, "Secrets"): on AWS the OpenRouter
//! key and the key that hashes client addresses live in Secrets Manager, named by
//! `OPENROUTER_API_KEY_SECRET` and `RATE_LIMIT_HASH_KEY_SECRET`, never in the function's
//! configuration (which anyone allowed `lambda:GetFunctionConfiguration` can read). Each
//! container reads them once, during init, both at once: a new value reaches every
//! container started after it was stored, with no redeploy. A plain
//! `OPENROUTER_API_KEY` or `RATE_LIMIT_HASH_KEY` (locally, `.env`) is used as it is.

use std::time::Duration;

pub use aws_sdk_secretsmanager;
use aws_sdk_secretsmanager::Client;

use crate::config::{Config, Secret};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{variable}: the secret {id} could not be read from Secrets Manager")]
    Read {
        variable: &'static str,
        id: String,
        #[source]
        source: Box<aws_sdk_secretsmanager::Error>,
    },
    #[error("{variable}: the secret {id} holds no text (SecretString)")]
    Empty { variable: &'static str, id: String },
}

/// `config` with the secrets it names read into it; unchanged (and no AWS client
/// built) when it names none.
pub async fn resolve(config: Config) -> Result<Config, SecretError> {
    if config.secrets.api_key.is_none() && config.secrets.hash_key.is_none() {
        return Ok(config);
    }
    let sdk = crate::aws::sdk_config().await;
    resolve_with(config, &tuned((&sdk).into())).await
}

/// As [`resolve`], with `client` (tests hand in one for their local server).
pub async fn resolve_with(mut config: Config, client: &Client) -> Result<Config, SecretError> {
    let started = std::time::Instant::now();
    let names = &config.secrets;
    let (api_key, hash_key) = tokio::join!(
        read(
            client,
            "OPENROUTER_API_KEY_SECRET",
            names.api_key.as_deref()
        ),
        read(
            client,
            "RATE_LIMIT_HASH_KEY_SECRET",
            names.hash_key.as_deref()
        ),
    );
    if let Some(key) = api_key? {
        config.upstream.api_key = Some(key);
    }
    if let Some(key) = hash_key? {
        config.rate_limits.hash_key = Some(key);
    }
    tracing::info!(
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "secrets read from Secrets Manager"
    );
    Ok(config)
}

/// A client from `builder` (on Lambda, the environment's region and credentials, and
/// `AWS_ENDPOINT_URL_SECRETS_MANAGER` for a local server) that gives up within
/// seconds: init may wait that long, a request never waits for it.
pub fn tuned(builder: aws_sdk_secretsmanager::config::Builder) -> Client {
    let timeouts = aws_sdk_secretsmanager::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build();
    Client::from_conf(builder.timeout_config(timeouts).build())
}

async fn read(
    client: &Client,
    variable: &'static str,
    id: Option<&str>,
) -> Result<Option<Secret>, SecretError> {
    let Some(id) = id else { return Ok(None) };
    let output = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|error| SecretError::Read {
            variable,
            id: id.to_owned(),
            source: Box::new(error.into()),
        })?;
    match output.secret_string {
        Some(text) if !text.trim().is_empty() => Ok(Some(Secret::new(text.trim().to_owned()))),
        _ => Err(SecretError::Empty {
            variable,
            id: id.to_owned(),
        }),
    }
}
