//! `Connections`: sending to a WebSocket client through API Gateway's Management API
//! (`POST`/`DELETE @connections/{id}` at `https://{domain}/{stage}`), with the
//! answers that matter told apart: the client is gone, or API Gateway is throttling.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::error::SdkError;
use aws_sdk_apigatewaymanagement::operation::delete_connection::DeleteConnectionError;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use llm_proxy_shared::metrics::Posted;

#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The client has left (`GoneException`, 410).
    #[error("the client is gone")]
    Gone,
    /// API Gateway is throttling the account (`LimitExceededException`, 429).
    #[error("API Gateway is throttling")]
    Throttled,
    #[error("the Management API call failed")]
    Failed(#[source] Box<aws_sdk_apigatewaymanagement::Error>),
}

impl<R: std::fmt::Debug + Send + Sync + 'static> From<SdkError<PostToConnectionError, R>>
    for PostError
{
    fn from(error: SdkError<PostToConnectionError, R>) -> Self {
        if let SdkError::ServiceError(e) = &error {
            match e.err() {
                PostToConnectionError::GoneException(_) => return Self::Gone,
                PostToConnectionError::LimitExceededException(_) => return Self::Throttled,
                _ => {}
            }
        }
        Self::Failed(Box::new(error.into()))
    }
}

impl<R: std::fmt::Debug + Send + Sync + 'static> From<SdkError<DeleteConnectionError, R>>
    for PostError
{
    fn from(error: SdkError<DeleteConnectionError, R>) -> Self {
        if let SdkError::ServiceError(e) = &error {
            match e.err() {
                DeleteConnectionError::GoneException(_) => return Self::Gone,
                DeleteConnectionError::LimitExceededException(_) => return Self::Throttled,
                _ => {}
            }
        }
        Self::Failed(Box::new(error.into()))
    }
}

/// One Management API client per endpoint (in practice one: the API's own), built
/// on first use from the settings made at init, so every call shares one connection
/// pool; and at most [`POSTS_AT_ONCE`] calls at a time, so that pool stays small
/// however many replies are waiting.
pub struct Connections {
    base: aws_sdk_apigatewaymanagement::config::Builder,
    clients: Mutex<HashMap<String, Client>>,
    at_once: tokio::sync::Semaphore,
}

/// Management API calls one container makes at once (one HTTP connection each).
pub const POSTS_AT_ONCE: usize = 32;

impl Connections {
    /// `base` carries credentials and region (from the environment on Lambda, fixed
    /// ones for the local gateway). Each call has a deadline and is not retried by
    /// the SDK: the caller decides what to retry.
    pub fn new(base: aws_sdk_apigatewaymanagement::config::Builder) -> Self {
        let timeouts = aws_sdk_apigatewaymanagement::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_timeout(Duration::from_secs(10))
            .build();
        let base = base
            .timeout_config(timeouts)
            .retry_config(aws_sdk_apigatewaymanagement::config::retry::RetryConfig::disabled());
        Self {
            base,
            clients: Mutex::new(HashMap::new()),
            at_once: tokio::sync::Semaphore::new(POSTS_AT_ONCE),
        }
    }

    fn client(&self, endpoint: &str) -> Client {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients
            .entry(endpoint.to_owned())
            .or_insert_with(|| Client::from_conf(self.base.clone().endpoint_url(endpoint).build()))
            .clone()
    }

    pub async fn post(
        &self,
        endpoint: &str,
        connection_id: &str,
        data: String,
    ) -> Result<(), PostError> {
        let _turn = self.at_once.acquire().await;
        let posted: Result<(), PostError> = self
            .client(endpoint)
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(data))
            .send()
            .await
            .map(|_| ())
            .map_err(PostError::from);
        llm_proxy_shared::metrics::websocket_post(match &posted {
            Ok(()) => Posted::Delivered,
            Err(PostError::Gone) => Posted::Gone,
            Err(PostError::Throttled) => Posted::Throttled,
            Err(PostError::Failed(_)) => Posted::Failed,
        });
        posted
    }

    pub async fn delete(&self, endpoint: &str, connection_id: &str) -> Result<(), PostError> {
        let _turn = self.at_once.acquire().await;
        self.client(endpoint)
            .delete_connection()
            .connection_id(connection_id)
            .send()
            .await?;
        Ok(())
    }
}
