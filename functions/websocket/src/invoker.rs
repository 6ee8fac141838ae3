//! `Invoker`: how `$default` hands an inference to the worker without waiting for it.
//! API Gateway waits at most 29 s for `$default`, and a generation can run for
//! minutes, so the work runs in an invocation of its own.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use llm_proxy_shared::relay::Reserved;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The key of a worker event, telling it apart from API Gateway's events.
pub const JOB_KEY: &str = "llm_proxy_worker";

/// One inference for the worker: everything it needs, since it shares nothing with
/// the `$default` invocation that made it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Job {
    pub connection_id: String,
    /// The Management API endpoint of the connection's API and stage.
    pub endpoint: String,
    /// The client's request id.
    pub id: String,
    /// API Gateway's id of the client message: two deliveries of one message share
    /// it, a new request under a reused `id` does not.
    pub message_id: String,
    pub stream: bool,
    /// The client's address as API Gateway saw it, for the spend budgets.
    pub source_ip: String,
    /// The chat body as the client wrote it.
    pub data: Box<RawValue>,
    /// What `$default` reserved for it, which the worker settles.
    pub reserved: Reserved,
    /// The id of the client message (API Gateway's request id), in the worker's log
    /// lines and error messages as in `$default`'s.
    #[serde(default)]
    pub request_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the worker invocation failed")]
    Lambda(#[source] Box<aws_sdk_lambda::Error>),
    #[error("the worker queue is closed")]
    QueueClosed,
    #[error("the job could not be written")]
    Encode(#[source] serde_json::Error),
}

pub enum Invoker {
    /// On AWS: an asynchronous invocation (`InvocationType: Event`) of this function.
    /// `template.yaml` gives it no retries; a repeated delivery is answered once by
    /// the worker's claim.
    Lambda {
        client: aws_sdk_lambda::Client,
        function: String,
    },
    /// In the local gateway: a queue whose reader runs each job on a task of its own.
    Queue(tokio::sync::mpsc::UnboundedSender<Vec<u8>>),
}

impl Invoker {
    pub async fn invoke(&self, job: &Job) -> Result<(), InvokeError> {
        // The event as Lambda delivers it: JSON, whichever way it travels.
        let event = serde_json::to_vec(&serde_json::json!({ JOB_KEY: job }))
            .map_err(InvokeError::Encode)?;
        match self {
            Self::Lambda { client, function } => {
                client
                    .invoke()
                    .function_name(function)
                    .invocation_type(InvocationType::Event)
                    .payload(Blob::new(event))
                    .send()
                    .await
                    .map_err(|e| InvokeError::Lambda(Box::new(e.into())))?;
                Ok(())
            }
            Self::Queue(queue) => queue.send(event).map_err(|_| InvokeError::QueueClosed),
        }
    }
}
