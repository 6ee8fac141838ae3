//! One TLS stack for every connection the proxy makes, to OpenRouter and to AWS:
//! rustls with ring. The default of both reqwest and the AWS SDK is aws-lc, which
//! was 1.3 MB of every binary (BENCHMARKS.md, "Binary size").

/// Makes ring the process's rustls provider, which reqwest requires before it builds a
/// client. Idempotent: a provider already installed (by an earlier call) stays.
pub fn install() {
    // Err means one is installed already, which is all this asks.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
