//! The open connections of the emulation: what the `@connections` endpoint sends to,
//! describes and closes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

/// What the Management API asks a connection to do.
#[derive(Debug)]
pub enum Outgoing {
    Text(String),
    Binary(Vec<u8>),
    /// `DeleteConnection`: close the socket.
    Close,
}

pub struct Connection {
    pub sender: mpsc::Sender<Outgoing>,
    pub connected_at: u64,
    pub source_ip: IpAddr,
    pub user_agent: Option<String>,
    /// Unix milliseconds of the last message either way.
    pub last_active: Arc<AtomicU64>,
}

#[derive(Default)]
pub struct Registry {
    connections: Mutex<HashMap<String, Arc<Connection>>>,
}

impl Registry {
    pub fn insert(&self, id: String, connection: Connection) {
        self.lock().insert(id, Arc::new(connection));
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn get(&self, id: &str) -> Option<Arc<Connection>> {
        self.lock().get(id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Connection>>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
