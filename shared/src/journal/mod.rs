//! The journal (`docs/http-api.md`, "Retries and resuming"): the answers given under an
//! `Idempotency-Key`, kept `IDEMPOTENCY_TTL_MS` (24 h), so that a retry gets the answer back instead
//! of paying for another generation, and a dropped stream can be resumed.
//!
//! An answer is a record ([`Meta`]) and a sequence of pieces: a JSON body, a stream's
//! events (each with its `id:`), or speech's bytes. While an answer is made its pieces
//! are kept in this process ([`Live`]), where followers are woken as each arrives; with
//! a rate-limit table they are also written to DynamoDB, batched into items
//! ([`dynamo`]), where a follower on another container polls for them every [`POLL`].
//! Without a table the memory of this process is the whole journal.

mod dynamo;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

pub use dynamo::{DynamoJournal, calls};

/// The longest a follower waits for an answer's end: past any stream's
/// `STREAM_MAX_DURATION_MS` (15 minutes at most on AWS), so only an answer whose
/// container died is given up on.
pub const FOLLOW_MAX: Duration = Duration::from_secs(16 * 60);
/// How often a follower on another container looks for more.
pub const POLL: Duration = Duration::from_millis(250);
/// The most of finished answers this process keeps when it is the whole journal (no
/// table): past it the oldest are forgotten first, so keys with unique values cannot
/// fill its memory.
pub const MEMORY_BYTES: usize = 256 * 1024 * 1024;
/// The most of one answer journaled; past it the answer still reaches its first
/// client, but it can no longer be replayed or resumed.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;

/// What kind of answer a journal holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Json,
    Sse,
    Media,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The answer is being made.
    Running,
    /// Every piece is in.
    Done,
    /// The answer outgrew [`MAX_BYTES`]: what is kept is not all of it.
    Overflow,
}

/// An answer's record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    /// The request it answers: a digest of its route and body.
    pub fingerprint: String,
    pub kind: Kind,
    pub state: State,
    pub content_type: String,
    /// OpenRouter's headers passed back (the generation id, the cache's).
    pub headers: Vec<(String, String)>,
    /// Unix ms of the last change, to tell an abandoned answer from a slow one.
    pub updated_ms: u64,
}

/// What a claim found.
#[derive(Debug)]
pub enum Claimed {
    /// No answer under this key: the caller makes it.
    First,
    /// The key was used for another request.
    Mismatch,
    /// The answer to this request, made or being made.
    Existing(Meta),
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("the journal's store failed: {0}")]
    Store(String),
}

/// An answer being made or kept in this process.
struct Live {
    meta: Mutex<Meta>,
    pieces: Mutex<Vec<Bytes>>,
    bytes: Mutex<usize>,
    changed: Notify,
    created: Instant,
}

impl Live {
    fn meta(&self) -> Meta {
        lock(&self.meta).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A digest, as hex.
pub fn digest(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub struct Journal {
    live: Mutex<HashMap<String, Arc<Live>>>,
    dynamo: Option<DynamoJournal>,
    /// How long an answer is kept.
    keep: Duration,
}

impl Journal {
    pub fn new(dynamo: Option<DynamoJournal>, keep: Duration) -> Self {
        Self {
            live: Mutex::default(),
            dynamo,
            keep,
        }
    }

    fn live(&self, scope: &str) -> Option<Arc<Live>> {
        let mut live = lock(&self.live);
        let keep = self.keep;
        live.retain(|_, answer| answer.created.elapsed() < keep);
        live.get(scope).cloned()
    }

    /// Claims `scope` (a client and its key) for the request `fingerprint`, an answer
    /// of `kind` in `content_type`.
    pub async fn claim(
        &self,
        scope: &str,
        fingerprint: &str,
        kind: Kind,
    ) -> Result<Claimed, JournalError> {
        let meta = Meta {
            fingerprint: fingerprint.to_owned(),
            kind,
            state: State::Running,
            content_type: String::new(),
            headers: Vec::new(),
            updated_ms: now_ms(),
        };
        let existing = match self.live(scope) {
            Some(live) => Some(live.meta()),
            None => match &self.dynamo {
                Some(dynamo) => dynamo.claim(scope, &meta, self.keep).await?,
                None => None,
            },
        };
        let verdict = |held: Meta| {
            if held.fingerprint == fingerprint {
                Claimed::Existing(held)
            } else {
                Claimed::Mismatch
            }
        };
        if let Some(existing) = existing {
            return Ok(verdict(existing));
        }
        let mut live = lock(&self.live);
        if let Some(raced) = live.get(scope) {
            return Ok(verdict(raced.meta()));
        }
        forget_oldest(&mut live, MEMORY_BYTES);
        live.insert(
            scope.to_owned(),
            Arc::new(Live {
                meta: Mutex::new(meta),
                pieces: Mutex::default(),
                bytes: Mutex::new(0),
                changed: Notify::new(),
                created: Instant::now(),
            }),
        );
        Ok(Claimed::First)
    }

    /// Gives the key up: the request was not answered (refused, or OpenRouter failed
    /// before its first byte), so a retry tries again.
    pub async fn release(&self, scope: &str) {
        let released = lock(&self.live).remove(scope);
        if let Some(live) = released {
            // Whoever follows it stops: nothing more will come.
            lock(&live.meta).state = State::Done;
            live.changed.notify_waiters();
        }
        if let Some(dynamo) = &self.dynamo
            && let Err(error) = dynamo.release(scope).await
        {
            tracing::warn!(error = %error, "journal: a claim could not be released");
        }
    }

    /// A writer for the answer of `kind` claimed under `scope`, once its headers are
    /// known.
    pub fn writer(
        self: &Arc<Self>,
        scope: &str,
        kind: Kind,
        content_type: String,
        headers: Vec<(String, String)>,
    ) -> Writer {
        let live = self.live(scope);
        let meta = match &live {
            Some(live) => {
                let mut meta = lock(&live.meta);
                meta.content_type = content_type;
                meta.headers = headers;
                meta.updated_ms = now_ms();
                meta.clone()
            }
            // Expired while it was made: nothing is kept, but its client is answered.
            None => Meta {
                fingerprint: String::new(),
                kind,
                state: State::Running,
                content_type,
                headers,
                updated_ms: now_ms(),
            },
        };
        Writer {
            journal: self.clone(),
            scope: scope.to_owned(),
            meta,
            live,
            pending: Vec::new(),
            pending_bytes: 0,
            flushed_chunks: 0,
            flushed_pieces: 0,
            overflow: false,
        }
    }

    /// The pieces of the answer under `scope` after the first `after`, as they come,
    /// until the answer ends. `None` if there is no such answer.
    pub fn follow(
        self: &Arc<Self>,
        scope: &str,
        after: u64,
        keepalive: Option<(Duration, Bytes)>,
    ) -> impl Stream<Item = Bytes> + Send + 'static {
        let journal = self.clone();
        let scope = scope.to_owned();
        let local = journal.live(&scope);
        let state = Follow {
            next: after,
            until: Some(Instant::now() + FOLLOW_MAX),
            ..Follow::default()
        };
        futures_util::stream::unfold(
            (journal, scope, local, state),
            move |(journal, scope, local, mut state)| {
                let keepalive = keepalive.clone();
                async move {
                    if state.ended {
                        return None;
                    }
                    loop {
                        let piece = match &local {
                            Some(live) => next_local(live, &mut state),
                            None => journal.next_remote(&scope, &mut state).await,
                        };
                        match piece {
                            Next::Piece(piece) => {
                                return Some((piece, (journal, scope, local, state)));
                            }
                            Next::End => return None,
                            Next::Wait
                                if state.until.is_some_and(|until| Instant::now() >= until) =>
                            {
                                return None;
                            }
                            Next::Wait => {}
                        }
                        let wait = async {
                            match &local {
                                Some(live) => {
                                    let changed = live.changed.notified();
                                    if next_ready(live, &state) {
                                        return;
                                    }
                                    changed.await;
                                }
                                None => tokio::time::sleep(POLL).await,
                            }
                        };
                        match &keepalive {
                            Some((every, comment)) => {
                                if tokio::time::timeout(*every, wait).await.is_err() {
                                    return Some((comment.clone(), (journal, scope, local, state)));
                                }
                            }
                            None => wait.await,
                        }
                    }
                }
            },
        )
    }

    async fn next_remote(&self, scope: &str, state: &mut Follow) -> Next {
        let Some(dynamo) = &self.dynamo else {
            return Next::End;
        };
        match dynamo.next(scope, state).await {
            Ok(next) => next,
            Err(error) => {
                tracing::warn!(error = %error, "journal: a follower's read failed");
                Next::Wait
            }
        }
    }
}

/// Forgets finished answers, oldest first, until those kept hold at most `budget` bytes.
fn forget_oldest(live: &mut HashMap<String, Arc<Live>>, budget: usize) {
    let size = |answer: &Live| *lock(&answer.bytes);
    let mut kept: usize = live.values().map(|answer| size(answer)).sum();
    if kept <= budget {
        return;
    }
    let mut finished: Vec<(Instant, String, usize)> = live
        .iter()
        .filter(|(_, answer)| answer.meta().state != State::Running)
        .map(|(scope, answer)| (answer.created, scope.clone(), size(answer)))
        .collect();
    finished.sort();
    for (_, scope, bytes) in finished {
        if kept <= budget {
            break;
        }
        live.remove(&scope);
        kept -= bytes;
    }
}

/// Where a follower is.
#[derive(Debug, Default)]
pub struct Follow {
    /// Pieces handed on (or skipped) so far.
    next: u64,
    /// The stored chunk it reads next.
    chunk: u64,
    /// Pieces read from a stored chunk, not yet handed on.
    buffered: std::collections::VecDeque<Bytes>,
    ended: bool,
    /// When it stops waiting ([`FOLLOW_MAX`]).
    until: Option<Instant>,
}

enum Next {
    Piece(Bytes),
    Wait,
    End,
}

fn next_ready(live: &Live, state: &Follow) -> bool {
    let have = lock(&live.pieces).len() as u64;
    have > state.next || live.meta().state != State::Running
}

fn next_local(live: &Live, state: &mut Follow) -> Next {
    let pieces = lock(&live.pieces);
    if let Some(piece) = usize::try_from(state.next).ok().and_then(|i| pieces.get(i)) {
        state.next += 1;
        return Next::Piece(piece.clone());
    }
    drop(pieces);
    if live.meta().state == State::Running {
        Next::Wait
    } else {
        state.ended = true;
        Next::End
    }
}

/// Writes one answer's pieces: to this process at once, to DynamoDB in chunks.
pub struct Writer {
    journal: Arc<Journal>,
    scope: String,
    /// The record, as written with each chunk.
    meta: Meta,
    live: Option<Arc<Live>>,
    pending: Vec<Bytes>,
    pending_bytes: usize,
    flushed_chunks: u64,
    flushed_pieces: u64,
    overflow: bool,
}

/// The most of one stored chunk, well under DynamoDB's 400 KB item.
const CHUNK_BYTES: usize = 96 * 1024;

impl Writer {
    /// The answer's record.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    pub async fn push(&mut self, piece: Bytes) {
        if self.overflow {
            return;
        }
        if let Some(live) = &self.live {
            let over = {
                let mut bytes = lock(&live.bytes);
                let over = *bytes + piece.len() > MAX_BYTES;
                if !over {
                    *bytes += piece.len();
                }
                over
            };
            if over {
                self.overflow = true;
                self.end(State::Overflow).await;
                return;
            }
            lock(&live.pieces).push(piece.clone());
            live.changed.notify_waiters();
        }
        if self.journal.dynamo.is_some() {
            self.pending_bytes += piece.len();
            self.pending.push(piece);
            if self.pending_bytes >= CHUNK_BYTES {
                self.flush(State::Running).await;
            }
        }
    }

    /// Whether pieces wait to be written to DynamoDB.
    pub fn pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes what waits, as a chunk of its own.
    pub async fn flush(&mut self, state: State) {
        let Some(dynamo) = &self.journal.dynamo else {
            return;
        };
        if self.live.is_none() {
            return;
        }
        let pieces = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let written = dynamo
            .write(
                self.journal.keep,
                &self.scope,
                self.flushed_chunks,
                self.flushed_pieces,
                &pieces,
                &Meta {
                    state,
                    updated_ms: now_ms(),
                    ..self.meta.clone()
                },
            )
            .await;
        match written {
            Ok(()) => {
                if !pieces.is_empty() {
                    self.flushed_chunks += 1;
                }
                self.flushed_pieces += pieces.len() as u64;
            }
            Err(error) => tracing::warn!(error = %error, "journal: a chunk could not be written"),
        }
    }

    /// The answer is all in (`Done`) or outgrew the journal (`Overflow`).
    pub async fn end(&mut self, state: State) {
        if let Some(live) = &self.live {
            {
                let mut meta = lock(&live.meta);
                meta.state = state;
                meta.updated_ms = now_ms();
            }
            live.changed.notify_waiters();
        }
        self.flush(state).await;
        // With a table, the table keeps it: this container's memory holds only what is
        // being made (followers here keep their own hold on it until they finish).
        if self.journal.dynamo.is_some() {
            lock(&self.journal.live).remove(&self.scope);
        }
    }
}

/// Splits complete SSE events (as the relay hands them on) into the events that carry
/// something, each with `id: <n>` first, numbered from `next`; comments are dropped.
pub fn number_events(events: &[u8], next: &mut u64) -> Vec<Bytes> {
    let mut numbered = Vec::new();
    let mut start = 0;
    while start < events.len() {
        let end = crate::sse::events::first_event_end(&events[start..])
            .map_or(events.len(), |e| start + e);
        let event = &events[start..end];
        start = end;
        let is_comment = event
            .split(|b| *b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter(|line| !line.is_empty())
            .all(|line| line.starts_with(b":"));
        if is_comment {
            continue;
        }
        *next += 1;
        let mut piece = format!("id: {next}\n").into_bytes();
        piece.extend_from_slice(event);
        numbered.push(Bytes::from(piece));
    }
    numbered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_numbered_and_comments_dropped() {
        let mut next = 0;
        let pieces = number_events(
            b": OPENROUTER PROCESSING\n\ndata: {\"a\":1}\n\nevent: x\ndata: 2\n\n",
            &mut next,
        );
        assert_eq!(
            pieces,
            vec![
                Bytes::from_static(b"id: 1\ndata: {\"a\":1}\n\n"),
                Bytes::from_static(b"id: 2\nevent: x\ndata: 2\n\n"),
            ]
        );
        assert_eq!(next, 2);
    }

    #[tokio::test]
    async fn finished_answers_are_forgotten_oldest_first_past_the_budget() {
        let journal = Arc::new(Journal::new(None, Duration::from_secs(60)));
        for scope in ["a", "b", "c"] {
            journal.claim(scope, "f", Kind::Json).await.unwrap();
            let mut writer = journal.writer(scope, Kind::Json, "application/json".into(), vec![]);
            writer.push(Bytes::from(vec![b'x'; 100])).await;
            if scope != "c" {
                writer.end(State::Done).await;
            }
        }
        forget_oldest(&mut lock(&journal.live), 150);
        let kept: Vec<String> = {
            let mut kept: Vec<String> = lock(&journal.live).keys().cloned().collect();
            kept.sort();
            kept
        };
        assert_eq!(kept, vec!["c".to_owned()], "the running one stays");
    }

    #[tokio::test]
    async fn a_claim_is_first_once_and_a_follower_gets_every_piece_once() {
        let journal = Arc::new(Journal::new(None, Duration::from_secs(60)));
        assert!(matches!(
            journal.claim("s", "f", Kind::Sse).await.unwrap(),
            Claimed::First
        ));
        assert!(matches!(
            journal.claim("s", "g", Kind::Sse).await.unwrap(),
            Claimed::Mismatch
        ));
        assert!(matches!(
            journal.claim("s", "f", Kind::Sse).await.unwrap(),
            Claimed::Existing(_)
        ));
        let mut writer = journal.writer("s", Kind::Sse, "text/event-stream".into(), vec![]);
        writer.push(Bytes::from_static(b"a")).await;
        let follower = journal.follow("s", 0, None);
        let later = journal.follow("s", 1, None);
        writer.push(Bytes::from_static(b"b")).await;
        writer.end(State::Done).await;
        let all: Vec<Bytes> = futures_util::StreamExt::collect(follower).await;
        assert_eq!(
            all,
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
        );
        let rest: Vec<Bytes> = futures_util::StreamExt::collect(later).await;
        assert_eq!(rest, vec![Bytes::from_static(b"b")]);
        journal.release("s").await;
        assert!(matches!(
            journal.claim("s", "g", Kind::Json).await.unwrap(),
            Claimed::First
        ));
    }
}
