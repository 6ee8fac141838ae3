//! `Outbox`: what one request sends to its connection. Messages larger than a frame go
//! in parts; a throttled post is retried with backoff, so no delta is lost; a client
//! that has gone stops the sender.

use std::time::Duration;

use llm_proxy_shared::error::Chain;
use llm_proxy_shared::websocket::message::{self, frames};
use serde_json::Value;
use tokio::time::Instant;

use crate::connections::{Connections, PostError};

/// Throttling backs off from this...
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// ...doubling up to this...
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// ...and gives up after this long: a message that cannot get through in this time
/// will not be read in time either.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);
/// Other failures (a 5xx, a broken connection) are retried this often.
const RETRIES: u32 = 3;

/// Why sending stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// The client has left.
    Gone,
    /// API Gateway would not take the message.
    Undeliverable,
}

pub struct Outbox<'a> {
    connections: &'a Connections,
    endpoint: &'a str,
    connection_id: &'a str,
    /// The request the messages belong to, named by split parts and errors.
    id: Option<&'a str>,
    /// The client message's request id, named by errors.
    request_id: &'a str,
    split_messages: u64,
    /// When the last message went out (heartbeats count from here).
    pub last_sent: Instant,
}

impl<'a> Outbox<'a> {
    pub fn new(
        connections: &'a Connections,
        endpoint: &'a str,
        connection_id: &'a str,
        id: Option<&'a str>,
        request_id: &'a str,
    ) -> Self {
        Self {
            connections,
            endpoint,
            connection_id,
            id,
            request_id,
            split_messages: 0,
            last_sent: Instant::now(),
        }
    }

    pub async fn send(&mut self, message: String) -> Result<(), Stop> {
        let frames = frames(message, self.id, self.split_messages);
        if frames.len() > 1 {
            self.split_messages += 1;
        }
        for frame in frames {
            self.post(frame).await?;
        }
        self.last_sent = Instant::now();
        Ok(())
    }

    /// Sends this request's `error` message: `error` is the object of `docs/errors.md`.
    pub async fn error(&mut self, error: Value) -> Result<(), Stop> {
        self.send(message::error(self.id, self.request_id, error))
            .await
    }

    /// Ends the connection (after a `close` message).
    pub async fn close(&self) {
        match self
            .connections
            .delete(self.endpoint, self.connection_id)
            .await
        {
            Ok(()) | Err(PostError::Gone) => {}
            Err(error) => {
                tracing::warn!(error = %Chain(&error), "the connection could not be closed")
            }
        }
    }

    async fn post(&self, frame: String) -> Result<(), Stop> {
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        let mut failures = 0;
        loop {
            match self
                .connections
                .post(self.endpoint, self.connection_id, frame.clone())
                .await
            {
                Ok(()) => return Ok(()),
                Err(PostError::Gone) => return Err(Stop::Gone),
                Err(PostError::Throttled) if started.elapsed() < GIVE_UP_AFTER => {}
                Err(PostError::Failed(error)) if failures < RETRIES => {
                    failures += 1;
                    tracing::warn!(error = %Chain(&error), "posting to the connection failed; retrying");
                }
                Err(error) => {
                    tracing::error!(error = %Chain(&error), "posting to the connection failed; giving up");
                    return Err(Stop::Undeliverable);
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
