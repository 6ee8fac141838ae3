//! The counter key for a client: a keyed hash of its address, never the address.
//!
//! IPv6 clients are counted per /64: one subscriber usually holds a whole /64, and
//! counting single addresses would let them rotate through 2^64 fresh counters.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::client_ip::ClientIp;

const HEX: &[u8; 16] = b"0123456789abcdef";

pub struct IpKeyer {
    secret: Vec<u8>,
}

impl IpKeyer {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            secret: secret.to_vec(),
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
        Self { secret }
    }

    /// 128 bits of HMAC-SHA256 over the client's counted prefix, as hex.
    pub fn key(&self, ip: ClientIp) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(mac) => mac,
            // HMAC takes keys of any length; this arm cannot be reached.
            Err(_) => return String::new(),
        };
        match ip.0 {
            IpAddr::V4(v4) => {
                mac.update(b"v4:");
                mac.update(&v4.octets());
            }
            IpAddr::V6(v6) => {
                mac.update(b"v6/64:");
                mac.update(&v6.octets()[..8]);
            }
        }
        let digest = mac.finalize().into_bytes();
        let mut key = String::with_capacity(32);
        for byte in &digest[..16] {
            key.push(char::from(HEX[usize::from(byte >> 4)]));
            key.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> ClientIp {
        ClientIp(s.parse().unwrap())
    }

    #[test]
    fn one_slash_64_shares_a_key() {
        let keyer = IpKeyer::new(b"secret");
        assert_eq!(
            keyer.key(ip("2001:db8:1:2::1")),
            keyer.key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_ne!(
            keyer.key(ip("2001:db8:1:2::1")),
            keyer.key(ip("2001:db8:1:3::1"))
        );
        assert_ne!(keyer.key(ip("192.0.2.1")), keyer.key(ip("192.0.2.2")));
    }

    #[test]
    fn the_key_depends_on_the_secret_and_hides_the_address() {
        let a = IpKeyer::new(b"one").key(ip("192.0.2.1"));
        let b = IpKeyer::new(b"two").key(ip("192.0.2.1"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(!a.contains("192.0.2.1"));
        assert_ne!(
            IpKeyer::random().key(ip("192.0.2.1")),
            IpKeyer::random().key(ip("192.0.2.1"))
        );
    }
}
