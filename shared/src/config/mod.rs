//! `Config`: every setting of `docs/configuration.md`, read once per container from the
//! environment and grouped by the part of the proxy that uses it.
//!
//! A value that is set but does not parse stops start-up with a message naming the
//! variable and what was expected: a typo must never quietly become the default.

mod reader;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

pub use reader::ConfigError;
use reader::Reader;

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
    Test,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Production => "production",
            Self::Test => "test",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// What a request gets when the counter store fails (`docs/rate-limits.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Count in this container's memory, with the same limits.
    Local,
    /// Serve, uncounted.
    Open,
    /// Refuse with 503.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    Any,
    List(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub log_level: LogLevel,
    pub upstream: UpstreamConfig,
    pub guard: GuardConfig,
    pub rate_limits: RateLimitConfig,
    pub catalog: CatalogConfig,
    pub cors: CorsOrigins,
    pub local: LocalConfig,
    pub websocket: WebSocketConfig,
    pub metrics: MetricsConfig,
    /// Secrets to read from Secrets Manager at start-up (`crate::secrets`).
    pub secrets: SecretNames,
}

/// The Secrets Manager ids (names or ARNs) of secrets read at start-up.
#[derive(Debug, Clone, Default)]
pub struct SecretNames {
    /// `OPENROUTER_API_KEY_SECRET`: the OpenRouter key.
    pub api_key: Option<String>,
    /// `RATE_LIMIT_HASH_KEY_SECRET`: the key that hashes client addresses.
    pub hash_key: Option<String>,
}

/// CloudWatch metrics (`docs/operations.md`, "Metrics").
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// `METRICS=emf`: Embedded Metric Format lines on stdout.
    pub emf: bool,
    pub namespace: String,
}

/// What the OpenRouter client and the chat pipeline need.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub api_key: Option<Secret>,
    pub base_url: String,
    /// To the first byte, and of silence mid-answer.
    pub request_timeout: Duration,
    pub stream_max_duration: Duration,
    /// Upstream silence after which a stream gets an SSE comment of the proxy's own.
    pub sse_keepalive: Duration,
    /// When OpenRouter's response cache may answer (`RESPONSE_CACHE`).
    pub response_cache: ResponseCache,
    /// How long an answer given under an `Idempotency-Key` is kept.
    pub idempotency_ttl: Duration,
}

/// When OpenRouter's response cache may answer (`docs/http-api.md`, "Response
/// caching").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseCache {
    /// Never: the caller's cache headers are not passed on.
    Off,
    /// When the caller sends `X-OpenRouter-Cache: true`.
    OnRequest,
    /// Unless the caller sends `X-OpenRouter-Cache: false`.
    Always,
}

/// The spend guard: what a chat request may ask of the key's credit
/// (`docs/http-api.md`, "Spend guard").
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// `max_tokens` above this is refused; a request without one is given it.
    pub max_tokens_cap: u64,
    /// Models a request may name (empty: every model).
    pub model_allowlist: Vec<ModelPattern>,
    /// Models a request may not name.
    pub model_denylist: Vec<ModelPattern>,
    /// The most one request may cost at worst, in USD (`MAX_REQUEST_COST_USD`).
    pub max_request_cost_usd: f64,
    /// The most input one request may carry, in tokens estimated from its size.
    pub max_input_tokens: u64,
    /// The most choices (`n`) one request may ask for.
    pub max_choices: u64,
    /// What a model the catalogue does not price is reserved at, in USD per million
    /// tokens (prompt, completion); `None`: the catalogue's median.
    pub unpriced_prices: Option<(f64, f64)>,
}

/// A model id pattern: `*` stands for any run of characters (`openai/*`, `*:online`);
/// compared without regard to case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPattern(String);

impl GuardConfig {
    /// Whether `MODEL_ALLOWLIST` names `id` exactly, without a wildcard.
    pub fn names_exactly(&self, id: &str) -> bool {
        self.model_allowlist
            .iter()
            .any(|p| !p.0.contains('*') && (p.0 == id || p.0.starts_with(&format!("{id}/"))))
    }
}

impl ModelPattern {
    /// Whether the pattern names a variant (`*:online`) or the `~` alias itself, so
    /// it is matched against the whole id rather than the id without them.
    pub fn names_variant(&self) -> bool {
        self.0.starts_with('~')
            || self
                .0
                .rsplit('/')
                .next()
                .is_some_and(|tail| tail.contains(':'))
    }

    pub fn matches(&self, model: &str) -> bool {
        let model = model.to_ascii_lowercase();
        let mut parts = self.0.split('*');
        let first = parts.next().unwrap_or_default();
        let Some(mut rest) = model.strip_prefix(first) else {
            return false;
        };
        let parts: Vec<&str> = parts.collect();
        let Some((last, middle)) = parts.split_last() else {
            return rest.is_empty();
        };
        for part in middle {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

/// What the `RateLimiter` needs (`docs/rate-limits.md`).
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    pub window: Duration,
    pub max_requests: u32,
    pub inference_max_requests: u32,
    pub ws_connections: u32,
    pub ws_window: Duration,
    pub table: Option<String>,
    pub hash_key: Option<Secret>,
    pub fail_mode: FailMode,
    /// How long a request waits for the counter store before `fail_mode` applies.
    pub store_timeout: Duration,
    /// What one client may spend per window, in USD; 0 turns the budget off.
    pub spend_limit_usd: f64,
    /// What the proxy may spend per UTC day, in USD; 0 turns the budget off.
    pub spend_limit_global_usd_per_day: f64,
}

#[derive(Debug, Clone)]
pub struct CatalogConfig {
    pub ttl: Duration,
}

/// The local gateway's own settings; Lambda ignores them.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub host: IpAddr,
    pub port: u16,
    pub max_concurrent_requests: u32,
    /// One client's share of `max_concurrent_requests`.
    pub max_concurrent_requests_per_client: u32,
    /// Open connections at once; more wait in the listen queue.
    pub max_connections: u32,
    /// One client's share of `max_connections`; beyond it a connection is answered 503.
    pub max_connections_per_client: u32,
    /// How long a client may take to send a request's head.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_read_timeout: Duration,
    /// How long a client may leave the proxy's answer unread before it is cut off.
    pub write_timeout: Duration,
    /// API Gateway closes a WebSocket connection silent this long (10 min); the
    /// local emulation does the same, sooner if asked (for tests).
    pub ws_idle_timeout: Duration,
    /// API Gateway ends every WebSocket connection after 2 h; so does the emulation.
    pub ws_max_duration: Duration,
}

/// What the WebSocket handler needs (`docs/websocket.md`).
#[derive(Debug, Clone)]
pub struct WebSocketConfig {
    pub max_connections: u32,
    pub heartbeat_interval: Duration,
    pub flush_interval: Duration,
    pub flush_bytes: usize,
    /// Where the Management API is, in place of `https://{domain}/{stage}` from the
    /// event: for local runs and tests.
    pub management_endpoint: Option<String>,
}

/// The default OpenRouter endpoint.
pub const DEFAULT_BASE_URL: &str = "https://openrouter.ai/api/v1";

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings from `vars` alone (for tests).
    pub fn from_pairs(vars: &[(&str, &str)]) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Reader { lookup: &lookup };
        // A client's shares of the local gateway's places default to a quarter of the
        // requests and an eighth of the connections: no one address can take them all.
        let max_concurrent_requests = env.count("MAX_CONCURRENT_REQUESTS", 100)?;
        let max_connections = env.count("MAX_CONNECTIONS", 1024)?;
        let config = Self {
            environment: env.choice(
                "ENVIRONMENT",
                Environment::Development,
                &[
                    ("development", Environment::Development),
                    ("production", Environment::Production),
                    ("test", Environment::Test),
                ],
            )?,
            log_level: env.choice(
                "LOG_LEVEL",
                LogLevel::Info,
                &[
                    ("debug", LogLevel::Debug),
                    ("info", LogLevel::Info),
                    ("warn", LogLevel::Warn),
                    ("error", LogLevel::Error),
                ],
            )?,
            upstream: UpstreamConfig {
                api_key: env.raw("OPENROUTER_API_KEY").map(Secret),
                base_url: env.parse(
                    "OPENROUTER_BASE_URL",
                    DEFAULT_BASE_URL.to_owned(),
                    "an http:// or https:// URL",
                    parse_url,
                )?,
                request_timeout: env.millis("REQUEST_TIMEOUT", 30_000)?,
                // The stream function's timeout in template.yaml is 900 s; ending a
                // little earlier lets the proxy close the stream cleanly instead of
                // being cut.
                stream_max_duration: env.millis("STREAM_MAX_DURATION_MS", 870_000)?,
                sse_keepalive: env.millis("SSE_KEEPALIVE_MS", 25_000)?,
                idempotency_ttl: env.millis("IDEMPOTENCY_TTL_MS", 86_400_000)?,
                response_cache: env.choice(
                    "RESPONSE_CACHE",
                    ResponseCache::OnRequest,
                    &[
                        ("off", ResponseCache::Off),
                        ("on-request", ResponseCache::OnRequest),
                        ("always", ResponseCache::Always),
                    ],
                )?,
            },
            guard: GuardConfig {
                max_tokens_cap: env.count("MAX_TOKENS_CAP", 4096)?.into(),
                model_allowlist: env.parse(
                    "MODEL_ALLOWLIST",
                    Vec::new(),
                    "a comma-separated list of model ids or patterns such as openai/*",
                    parse_patterns,
                )?,
                model_denylist: env.parse(
                    "MODEL_DENYLIST",
                    Vec::new(),
                    "a comma-separated list of model ids or patterns such as *:online",
                    parse_patterns,
                )?,
                max_request_cost_usd: env.dollars("MAX_REQUEST_COST_USD", 0.25)?,
                max_input_tokens: env.count("MAX_INPUT_TOKENS", 100_000)?.into(),
                max_choices: env.count("MAX_CHOICES", 1)?.into(),
                unpriced_prices: env.parse(
                    "UNPRICED_MODEL_PRICES",
                    None,
                    "two USD prices per million tokens, prompt and completion, such as 5,15",
                    parse_price_pair,
                )?,
            },
            rate_limits: RateLimitConfig {
                window: env.millis("RATE_LIMIT_WINDOW_MS", 900_000)?,
                max_requests: env.count("RATE_LIMIT_MAX_REQUESTS", 100)?,
                inference_max_requests: env.count("RATE_LIMIT_INFERENCE_MAX_REQUESTS", 50)?,
                ws_connections: env.count("WS_RATE_LIMIT_CONNECTIONS", 5)?,
                ws_window: env.millis("WS_RATE_LIMIT_WINDOW_MS", 60_000)?,
                table: env.raw("RATE_LIMIT_TABLE"),
                hash_key: env.raw("RATE_LIMIT_HASH_KEY").map(Secret),
                fail_mode: env.choice(
                    "RATE_LIMIT_FAIL_MODE",
                    FailMode::Local,
                    &[
                        ("local", FailMode::Local),
                        ("open", FailMode::Open),
                        ("closed", FailMode::Closed),
                    ],
                )?,
                store_timeout: env.millis("RATE_LIMIT_STORE_TIMEOUT_MS", 150)?,
                spend_limit_usd: env.dollars("SPEND_LIMIT_USD", 0.50)?,
                spend_limit_global_usd_per_day: env
                    .dollars("SPEND_LIMIT_GLOBAL_USD_PER_DAY", 25.0)?,
            },
            catalog: CatalogConfig {
                ttl: env.millis("MODELS_CACHE_TTL_MS", 300_000)?,
            },
            cors: env.parse(
                "CORS_ORIGINS",
                CorsOrigins::Any,
                "* or a comma-separated list of origins such as https://app.example.com",
                parse_origins,
            )?,
            local: LocalConfig {
                host: env.parse(
                    "HOST",
                    IpAddr::from([127, 0, 0, 1]),
                    "an IP address such as 127.0.0.1 or 0.0.0.0",
                    |v| v.parse().ok(),
                )?,
                port: env.parse("PORT", 3000, "a port number 0-65535", |v| v.parse().ok())?,
                max_concurrent_requests,
                max_concurrent_requests_per_client: env.count(
                    "MAX_CONCURRENT_REQUESTS_PER_CLIENT",
                    max_concurrent_requests.div_ceil(4),
                )?,
                max_connections,
                max_connections_per_client: env
                    .count("MAX_CONNECTIONS_PER_CLIENT", max_connections.div_ceil(8))?,
                header_read_timeout: env.millis("HEADER_READ_TIMEOUT_MS", 10_000)?,
                body_read_timeout: env.millis("BODY_READ_TIMEOUT_MS", 30_000)?,
                write_timeout: env.millis("WRITE_TIMEOUT_MS", 30_000)?,
                ws_idle_timeout: env.millis("WS_IDLE_TIMEOUT_MS", 600_000)?,
                ws_max_duration: env.millis("WS_MAX_DURATION_MS", 7_200_000)?,
            },
            secrets: SecretNames {
                api_key: env.raw("OPENROUTER_API_KEY_SECRET"),
                hash_key: env.raw("RATE_LIMIT_HASH_KEY_SECRET"),
            },
            metrics: MetricsConfig {
                // On by default where CloudWatch reads stdout.
                emf: env.choice(
                    "METRICS",
                    env.raw("AWS_LAMBDA_FUNCTION_NAME").is_some(),
                    &[("emf", true), ("off", false)],
                )?,
                namespace: env
                    .raw("METRICS_NAMESPACE")
                    .unwrap_or_else(|| "llm-proxy".to_owned()),
            },
            websocket: WebSocketConfig {
                max_connections: env.count("WS_MAX_CONNECTIONS", 1000)?,
                heartbeat_interval: env.millis("WS_HEARTBEAT_INTERVAL", 30_000)?,
                flush_interval: env.millis("WS_FLUSH_INTERVAL_MS", 100)?,
                flush_bytes: env.parse(
                    "WS_FLUSH_BYTES",
                    16_384,
                    "a whole number of bytes from 1 to 32768 (a WebSocket frame)",
                    |v| v.parse::<usize>().ok().filter(|n| (1..=32_768).contains(n)),
                )?,
                management_endpoint: env.parse(
                    "WS_MANAGEMENT_ENDPOINT",
                    None,
                    "an http:// or https:// URL",
                    |v| parse_url(v).map(Some),
                )?,
            },
        };
        if config.environment == Environment::Production
            && !is_safe_upstream(&config.upstream.base_url)
        {
            return Err(ConfigError {
                name: "OPENROUTER_BASE_URL",
                value: config.upstream.base_url,
                expected: "an https:// URL in production (plain http:// only to a loopback address), so the key never crosses a network in clear".into(),
            });
        }
        // One source for each secret: two would leave which one is used to guesswork.
        for (plain, named, name) in [
            (
                config.upstream.api_key.is_some(),
                config.secrets.api_key.is_some(),
                "OPENROUTER_API_KEY_SECRET",
            ),
            (
                config.rate_limits.hash_key.is_some(),
                config.secrets.hash_key.is_some(),
                "RATE_LIMIT_HASH_KEY_SECRET",
            ),
        ] {
            if plain && named {
                return Err(ConfigError {
                    name,
                    value: String::new(),
                    expected: format!(
                        "unset while {} is set: give the secret one way only",
                        name.trim_end_matches("_SECRET")
                    ),
                });
            }
        }
        let limits = &config.rate_limits;
        if limits.table.is_some() && limits.hash_key.is_none() && config.secrets.hash_key.is_none()
        {
            return Err(ConfigError {
                name: "RATE_LIMIT_HASH_KEY",
                value: String::new(),
                expected: "a secret, or RATE_LIMIT_HASH_KEY_SECRET naming one (required when RATE_LIMIT_TABLE is set, so that client IPs are stored only as keyed hashes)".into(),
            });
        }
        Ok(config)
    }
}

fn parse_url(value: &str) -> Option<String> {
    let url = reqwest::Url::parse(value).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    Some(value.trim_end_matches('/').to_owned())
}

/// `https://`, or `http://` to this host only.
fn is_safe_upstream(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    match (url.scheme(), url.host()) {
        ("https", _) => true,
        ("http", Some(url::Host::Ipv4(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Ipv6(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Domain(name))) => name == "localhost",
        _ => false,
    }
}

fn parse_patterns(value: &str) -> Option<Vec<ModelPattern>> {
    let patterns: Vec<ModelPattern> = value
        .split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty())
        .map(ModelPattern)
        .collect();
    (!patterns.is_empty()).then_some(patterns)
}

fn parse_price_pair(value: &str) -> Option<Option<(f64, f64)>> {
    let (prompt, completion) = value.split_once(',')?;
    let price = |p: &str| {
        p.trim()
            .parse::<f64>()
            .ok()
            .filter(|p| p.is_finite() && *p > 0.0)
    };
    Some(Some((price(prompt)?, price(completion)?)))
}

fn parse_origins(value: &str) -> Option<CorsOrigins> {
    if value == "*" {
        return Some(CorsOrigins::Any);
    }
    let origins: Vec<String> = value
        .split(',')
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    let valid = origins.iter().all(|o| {
        reqwest::Url::parse(o).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
            && http::HeaderValue::from_str(o).is_ok()
    });
    (valid && !origins.is_empty()).then_some(CorsOrigins::List(origins))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = config(&[]).unwrap();
        assert_eq!(c.local.port, 3000);
        assert_eq!(c.local.host.to_string(), "127.0.0.1");
        assert_eq!(c.upstream.base_url, DEFAULT_BASE_URL);
        assert_eq!(c.rate_limits.window, Duration::from_secs(900));
        assert_eq!(c.rate_limits.max_requests, 100);
        assert_eq!(c.rate_limits.inference_max_requests, 50);
        assert_eq!(c.rate_limits.ws_connections, 5);
        assert_eq!(c.upstream.request_timeout, Duration::from_secs(30));
        assert_eq!(c.catalog.ttl, Duration::from_secs(300));
        assert_eq!(c.cors, CorsOrigins::Any);
        assert_eq!(c.rate_limits.fail_mode, FailMode::Local);
        assert_eq!(
            c.rate_limits.store_timeout,
            crate::rate_limit::DEFAULT_BUDGET
        );
        assert_eq!(c.guard.max_tokens_cap, 4096);
        assert!((c.rate_limits.spend_limit_usd - 0.5).abs() < 1e-9);
        assert!((c.rate_limits.spend_limit_global_usd_per_day - 25.0).abs() < 1e-9);
        assert_eq!(c.upstream.sse_keepalive, Duration::from_secs(25));
        assert_eq!(c.upstream.response_cache, ResponseCache::OnRequest);
        assert!(c.upstream.api_key.is_none());
    }

    #[test]
    fn a_bad_value_names_the_variable_and_what_was_expected() {
        let err = config(&[("REQUEST_TIMEOUT", "abc")]).unwrap_err();
        assert_eq!(err.name, "REQUEST_TIMEOUT");
        let text = err.to_string();
        assert!(text.contains("REQUEST_TIMEOUT=\"abc\""), "{text}");
        assert!(text.contains("milliseconds"), "{text}");

        let err = config(&[("LOG_LEVEL", "loud")]).unwrap_err();
        assert!(
            err.to_string().contains("debug, info, warn, error"),
            "{err}"
        );

        for (name, value) in [
            ("PORT", "70000"),
            ("HOST", "localhost:3000"),
            ("RATE_LIMIT_MAX_REQUESTS", "0"),
            ("RATE_LIMIT_FAIL_MODE", "maybe"),
            ("OPENROUTER_BASE_URL", "ftp://x"),
            ("CORS_ORIGINS", "not a url"),
            ("ENVIRONMENT", "prod"),
        ] {
            let err = config(&[(name, value)]).unwrap_err();
            assert_eq!(err.name, name);
        }
    }

    #[test]
    fn a_table_without_a_hash_key_is_refused() {
        let err = config(&[("RATE_LIMIT_TABLE", "limits")]).unwrap_err();
        assert_eq!(err.name, "RATE_LIMIT_HASH_KEY");
        assert!(config(&[("RATE_LIMIT_TABLE", "limits"), ("RATE_LIMIT_HASH_KEY", "s")]).is_ok());
    }

    #[test]
    fn empty_means_unset_and_secrets_do_not_print() {
        let c = config(&[("OPENROUTER_API_KEY", "sk-or-v1-secret"), ("PORT", "")]).unwrap();
        assert_eq!(c.local.port, 3000);
        assert!(!format!("{c:?}").contains("sk-or-v1-secret"));
    }

    #[test]
    fn model_patterns_match_with_wildcards() {
        let p = |s: &str| ModelPattern(s.to_owned());
        assert!(p("openai/*").matches("openai/gpt-4o"));
        assert!(p("openai/*").matches("OpenAI/GPT-4o"));
        assert!(!p("openai/*").matches("anthropic/claude"));
        assert!(p("*:online").matches("openai/gpt-4o:online"));
        assert!(!p("*:online").matches("openai/gpt-4o"));
        assert!(p("openai/gpt-4o").matches("openai/gpt-4o"));
        assert!(!p("openai/gpt-4o").matches("openai/gpt-4o-mini"));
        assert!(p("*/*-mini*").matches("openai/gpt-4o-mini:free"));
        assert!(p("*").matches("anything"));
    }

    #[test]
    fn production_refuses_a_plain_http_upstream_but_loopback() {
        let base = |url: &str| {
            config(&[("ENVIRONMENT", "production"), ("OPENROUTER_BASE_URL", url)])
                .map(|c| c.upstream.base_url)
        };
        assert!(base("http://openrouter.example/api/v1").is_err());
        assert!(base("http://127.0.0.1:8787/api/v1").is_ok());
        assert!(base("https://openrouter.ai/api/v1").is_ok());
        assert!(config(&[("OPENROUTER_BASE_URL", "http://openrouter.example/api/v1")]).is_ok());
    }

    #[test]
    fn origins_are_a_list() {
        let c = config(&[("CORS_ORIGINS", "https://a.example, http://localhost:5173/")]).unwrap();
        assert_eq!(
            c.cors,
            CorsOrigins::List(vec![
                "https://a.example".into(),
                "http://localhost:5173".into()
            ])
        );
    }
}
