//! A WebSocket client for the tests (tokio-tungstenite, a real client over a real
//! socket), which reads messages as a user of the protocol would: JSON, with split
//! `part` messages joined back (`docs/websocket.md`).

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub use tokio_tungstenite::tungstenite;

/// What the client saw next.
#[derive(Debug)]
pub enum Event {
    /// A message (a split one already joined).
    Message(Value),
    /// The server closed the connection, with this frame.
    Closed(Option<CloseFrame>),
}

pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    parts: HashMap<(String, u64), Vec<Option<String>>>,
    /// The size of every frame received, in order.
    pub frame_sizes: Vec<usize>,
}

impl WsClient {
    /// Opens `url`. A refused `$connect` is `Err(tungstenite::Error::Http(response))`.
    pub async fn connect(url: &str) -> Result<Self, tungstenite::Error> {
        let (stream, _) = connect_async(url).await?;
        Ok(Self::over(stream))
    }

    fn over(stream: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Self {
            stream,
            parts: HashMap::new(),
            frame_sizes: Vec::new(),
        }
    }

    /// Opens `url` (`ws://IP:PORT/...`) from the local address `local`, as a client at
    /// that address would.
    pub async fn connect_from(
        url: &str,
        local: std::net::IpAddr,
    ) -> Result<Self, tungstenite::Error> {
        let no_host = || tungstenite::Error::Url(tungstenite::error::UrlError::NoHostName);
        let authority = url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .ok_or_else(no_host)?;
        let remote: std::net::SocketAddr = authority.parse().map_err(|_| no_host())?;
        let socket = match remote {
            std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(std::net::SocketAddr::new(local, 0))?;
        let tcp = socket.connect(remote).await?;
        let (stream, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp)).await?;
        Ok(Self::over(stream))
    }

    pub async fn send(&mut self, message: &Value) -> Result<(), tungstenite::Error> {
        self.send_raw(Message::text(message.to_string())).await
    }

    pub async fn send_raw(&mut self, message: Message) -> Result<(), tungstenite::Error> {
        self.stream.send(message).await
    }

    /// The next message or close, or `None` if `within` passes first.
    pub async fn next(&mut self, within: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()?;
            let text = match frame {
                Some(Ok(Message::Text(text))) => text.to_string(),
                Some(Ok(Message::Close(frame))) => return Some(Event::Closed(frame)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Some(Event::Closed(None)),
            };
            self.frame_sizes.push(text.len());
            let Ok(message) = serde_json::from_str::<Value>(&text) else {
                return Some(Event::Message(Value::String(text)));
            };
            if message["type"] != "part" {
                return Some(Event::Message(message));
            }
            if let Some(joined) = self.join(&message) {
                return Some(Event::Message(joined));
            }
        }
    }

    /// The next message; panics on a close or if none comes within `within`.
    #[expect(clippy::panic, reason = "a test helper fails its test loudly")]
    pub async fn message(&mut self, within: Duration) -> Value {
        match self.next(within).await {
            Some(Event::Message(message)) => message,
            other => panic!("expected a message within {within:?}, got {other:?}"),
        }
    }

    /// Every message of request `id` up to and including its final one (the
    /// `inference_response` carrying `finish_reason`, or an `error`), in order;
    /// messages of other requests are kept aside in `others`.
    pub async fn until_final(
        &mut self,
        id: &str,
        within: Duration,
        others: &mut Vec<Value>,
    ) -> Vec<Value> {
        let mut messages = Vec::new();
        loop {
            let message = self.message(within).await;
            if message["id"] != id {
                others.push(message);
                continue;
            }
            let last = message["type"] == "error"
                || (message["type"] == "inference_response"
                    && message["data"].get("finish_reason").is_some());
            messages.push(message);
            if last {
                return messages;
            }
        }
    }

    fn join(&mut self, part: &Value) -> Option<Value> {
        let key = (
            part["id"].as_str().unwrap_or_default().to_owned(),
            part["message"].as_u64().unwrap_or_default(),
        );
        let count = usize::try_from(part["parts"].as_u64()?).ok()?;
        let index = usize::try_from(part["part"].as_u64()?).ok()?;
        let chunks = self
            .parts
            .entry(key.clone())
            .or_insert_with(|| vec![None; count]);
        *chunks.get_mut(index)? = Some(part["chunk"].as_str()?.to_owned());
        if chunks.iter().any(Option::is_none) {
            return None;
        }
        let whole: String = self.parts.remove(&key)?.into_iter().flatten().collect();
        serde_json::from_str(&whole).ok()
    }
}

/// The text of an answer's `inference_response` messages, joined.
pub fn content(messages: &[Value]) -> String {
    messages
        .iter()
        .filter(|m| m["type"] == "inference_response")
        .filter_map(|m| m["data"]["content"].as_str())
        .collect()
}
