//! The counter key for a client: a keyed hash of its address, never the address.
//!
//! IPv6 clients are counted per /64: one subscriber usually holds a whole /64, and
//! counting single addresses would let them rotate through 2^64 fresh counters. A /48
//! holds 65,536 /64s, so the /64s of one /48 also count together, against eight times
//! one client's limit: their counters live in one item, the /48's.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::client_ip::ClientIp;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Keyed once: each digest clones the keyed state instead of hashing the key's pads
/// again, half the SHA-256 work per request.
pub struct IpKeyer {
    keyed: Option<Hmac<Sha256>>,
}

impl IpKeyer {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            // HMAC takes keys of any length; `None` cannot happen.
            keyed: Hmac::<Sha256>::new_from_slice(secret).ok(),
        }
    }

    /// A secret nobody else knows, for in-memory counters that never leave the process.
    /// `RandomState` draws its keys from the operating system's randomness, per process.
    pub fn random() -> Self {
        let mut secret = Vec::with_capacity(32);
        for i in 0..4u64 {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(i);
            secret.extend_from_slice(&hasher.finish().to_le_bytes());
        }
        Self::new(&secret)
    }

    /// Where a client is counted: an IPv4 address on its own; an IPv6 client in the
    /// item of its /48, under a name for its /64.
    pub fn key(&self, ip: ClientIp) -> ClientKey {
        match ip.0 {
            IpAddr::V4(v4) => ClientKey {
                item: self.digest(b"v4:", &v4.octets(), 16),
                sub: None,
            },
            IpAddr::V6(v6) => ClientKey {
                item: self.digest(b"v6/48:", &v6.octets()[..6], 16),
                sub: Some(self.digest(b"v6/64:", &v6.octets()[..8], 8)),
            },
        }
    }

    /// `bytes` of HMAC-SHA256 over `label` and `data`, as hex.
    fn digest(&self, label: &[u8], data: &[u8], bytes: usize) -> String {
        let Some(mut mac) = self.keyed.clone() else {
            return String::new();
        };
        mac.update(label);
        mac.update(data);
        let digest = mac.finalize().into_bytes();
        let mut key = String::with_capacity(bytes * 2);
        for byte in &digest[..bytes] {
            key.push(char::from(HEX[usize::from(byte >> 4)]));
            key.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        key
    }
}

/// A client's place in the counter store: the item, and for IPv6 the name its /64's
/// counters carry inside the item of its /48.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    pub item: String,
    pub sub: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> ClientIp {
        ClientIp(s.parse().unwrap())
    }

    #[test]
    fn one_slash_64_shares_a_key_and_one_slash_48_an_item() {
        let keyer = IpKeyer::new(b"secret");
        assert_eq!(
            keyer.key(ip("2001:db8:1:2::1")),
            keyer.key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        let (a, b) = (
            keyer.key(ip("2001:db8:1:2::1")),
            keyer.key(ip("2001:db8:1:3::1")),
        );
        assert_eq!(a.item, b.item, "one /48");
        assert_ne!(a.sub, b.sub, "two /64s");
        assert_ne!(a.item, keyer.key(ip("2001:db8:2:2::1")).item);
        assert_ne!(keyer.key(ip("192.0.2.1")), keyer.key(ip("192.0.2.2")));
        assert_eq!(keyer.key(ip("192.0.2.1")).sub, None);
    }

    #[test]
    fn the_key_depends_on_the_secret_and_hides_the_address() {
        let a = IpKeyer::new(b"one").key(ip("192.0.2.1")).item;
        let b = IpKeyer::new(b"two").key(ip("192.0.2.1")).item;
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(!a.contains("192.0.2.1"));
        assert_ne!(
            IpKeyer::random().key(ip("192.0.2.1")),
            IpKeyer::random().key(ip("192.0.2.1"))
        );
    }
}
