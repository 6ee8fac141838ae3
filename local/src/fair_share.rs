//! A per-client share of a place the local gateway holds for all: connections, and
//! requests in flight (`MAX_CONNECTIONS_PER_CLIENT`, `MAX_CONCURRENT_REQUESTS_PER_CLIENT`).
//! Without it one address could take every place and leave every other client a 503
//! or a wait. A client is an IPv4 address or an IPv6 /64, as the rate limits count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use llm_proxy_shared::ClientIp;

#[derive(Clone)]
pub struct FairShare {
    per_client: u32,
    held: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// One place held by one client, given back when dropped.
pub struct Held {
    client: IpAddr,
    held: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl FairShare {
    pub fn new(per_client: u32) -> Self {
        Self {
            per_client,
            held: Arc::default(),
        }
    }

    pub fn per_client(&self) -> u32 {
        self.per_client
    }

    /// A place for `client`, unless it holds its share already.
    pub fn take(&self, client: ClientIp) -> Option<Held> {
        let client = client.subscriber();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(client).or_insert(0);
        if *count >= self.per_client {
            return None;
        }
        *count += 1;
        Some(Held {
            client,
            held: self.held.clone(),
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_holds_at_most_its_share_and_gets_it_back() {
        let share = FairShare::new(2);
        let a = ClientIp("192.0.2.1".parse().unwrap());
        let first = share.take(a).unwrap();
        let _second = share.take(a).unwrap();
        assert!(share.take(a).is_none());
        // Another /64 of IPv6 is another client; the same /64 is the same one.
        let v6 = ClientIp("2001:db8::1".parse().unwrap());
        let _one = share.take(v6).unwrap();
        let _two = share
            .take(ClientIp("2001:db8::2".parse().unwrap()))
            .unwrap();
        assert!(
            share
                .take(ClientIp("2001:db8::3".parse().unwrap()))
                .is_none()
        );
        assert!(
            share
                .take(ClientIp("2001:db8:0:1::1".parse().unwrap()))
                .is_some()
        );
        drop(first);
        assert!(share.take(a).is_some());
        assert!(share.held.lock().unwrap().len() <= 2);
    }
}
