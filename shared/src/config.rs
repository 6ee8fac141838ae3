//! `Config`: every setting of SPEC §5, read once per container from the environment.
//!
//! A value that is set but does not parse stops start-up with a message naming the
//! variable and what was expected: a typo must never quietly become the default.
//! An empty value counts as unset, as `.env` files write `KEY=` for "not given".

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{name}={value:?} is not valid: expected {expected}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub expected: String,
}

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

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    Open,
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    Any,
    List(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub openrouter_api_key: Option<Secret>,
    pub openrouter_base_url: String,
    pub port: u16,
    pub host: IpAddr,
    pub environment: Environment,
    pub log_level: LogLevel,
    pub rate_limit_window: Duration,
    pub rate_limit_max_requests: u32,
    pub rate_limit_inference_max_requests: u32,
    pub ws_rate_limit_connections: u32,
    pub ws_rate_limit_window: Duration,
    pub rate_limit_table: Option<String>,
    pub rate_limit_hash_key: Option<Secret>,
    pub rate_limit_fail_mode: FailMode,
    pub ws_max_connections: u32,
    pub ws_heartbeat_interval: Duration,
    pub max_concurrent_requests: u32,
    pub request_timeout: Duration,
    pub stream_max_duration: Duration,
    pub cors_origins: CorsOrigins,
    pub models_cache_ttl: Duration,
}

/// The default OpenRouter endpoint.
pub const DEFAULT_BASE_URL: &str = "https://openrouter.ai/api/v1";

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Reader { lookup: &lookup };
        let config = Self {
            openrouter_api_key: env.raw("OPENROUTER_API_KEY").map(Secret),
            openrouter_base_url: env.parse(
                "OPENROUTER_BASE_URL",
                DEFAULT_BASE_URL.to_owned(),
                "an http:// or https:// URL",
                parse_url,
            )?,
            port: env.parse("PORT", 3000, "a port number 0-65535", |v| v.parse().ok())?,
            host: env.parse(
                "HOST",
                IpAddr::from([127, 0, 0, 1]),
                "an IP address such as 127.0.0.1 or 0.0.0.0",
                |v| v.parse().ok(),
            )?,
            environment: env.parse(
                "ENVIRONMENT",
                Environment::Development,
                "one of development, production, test",
                |v| match v {
                    "development" => Some(Environment::Development),
                    "production" => Some(Environment::Production),
                    "test" => Some(Environment::Test),
                    _ => None,
                },
            )?,
            log_level: env.parse(
                "LOG_LEVEL",
                LogLevel::Info,
                "one of debug, info, warn, error",
                |v| match v {
                    "debug" => Some(LogLevel::Debug),
                    "info" => Some(LogLevel::Info),
                    "warn" => Some(LogLevel::Warn),
                    "error" => Some(LogLevel::Error),
                    _ => None,
                },
            )?,
            rate_limit_window: env.millis("RATE_LIMIT_WINDOW_MS", 900_000)?,
            rate_limit_max_requests: env.count("RATE_LIMIT_MAX_REQUESTS", 100)?,
            rate_limit_inference_max_requests: env
                .count("RATE_LIMIT_INFERENCE_MAX_REQUESTS", 50)?,
            ws_rate_limit_connections: env.count("WS_RATE_LIMIT_CONNECTIONS", 5)?,
            ws_rate_limit_window: env.millis("WS_RATE_LIMIT_WINDOW_MS", 60_000)?,
            rate_limit_table: env.raw("RATE_LIMIT_TABLE"),
            rate_limit_hash_key: env.raw("RATE_LIMIT_HASH_KEY").map(Secret),
            rate_limit_fail_mode: env.parse(
                "RATE_LIMIT_FAIL_MODE",
                FailMode::Open,
                "open or closed",
                |v| match v {
                    "open" => Some(FailMode::Open),
                    "closed" => Some(FailMode::Closed),
                    _ => None,
                },
            )?,
            ws_max_connections: env.count("WS_MAX_CONNECTIONS", 1000)?,
            ws_heartbeat_interval: env.millis("WS_HEARTBEAT_INTERVAL", 30_000)?,
            max_concurrent_requests: env.count("MAX_CONCURRENT_REQUESTS", 100)?,
            request_timeout: env.millis("REQUEST_TIMEOUT", 30_000)?,
            // The stream function's timeout in template.yaml is 900 s; ending a little
            // earlier lets the proxy close the stream cleanly instead of being cut.
            stream_max_duration: env.millis("STREAM_MAX_DURATION_MS", 870_000)?,
            cors_origins: env.parse(
                "CORS_ORIGINS",
                CorsOrigins::Any,
                "* or a comma-separated list of origins such as https://app.example.com",
                parse_origins,
            )?,
            models_cache_ttl: env.millis("MODELS_CACHE_TTL_MS", 300_000)?,
        };
        if config.rate_limit_table.is_some() && config.rate_limit_hash_key.is_none() {
            return Err(ConfigError {
                name: "RATE_LIMIT_HASH_KEY",
                value: String::new(),
                expected: "a secret (required when RATE_LIMIT_TABLE is set, so that client IPs are stored only as keyed hashes)".into(),
            });
        }
        Ok(config)
    }
}

struct Reader<'a, F: Fn(&str) -> Option<String>> {
    lookup: &'a F,
}

impl<F: Fn(&str) -> Option<String>> Reader<'_, F> {
    fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn parse<T>(
        &self,
        name: &'static str,
        default: T,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        match self.raw(name) {
            None => Ok(default),
            Some(value) => parse(&value).ok_or_else(|| ConfigError {
                name,
                value,
                expected: expected.to_owned(),
            }),
        }
    }

    fn millis(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.parse(
            name,
            Duration::from_millis(default),
            "a whole number of milliseconds, at least 1",
            |v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|ms| *ms >= 1)
                    .map(Duration::from_millis)
            },
        )
    }

    fn count(&self, name: &'static str, default: u32) -> Result<u32, ConfigError> {
        self.parse(name, default, "a whole number, at least 1", |v| {
            v.parse::<u32>().ok().filter(|n| *n >= 1)
        })
    }
}

fn parse_url(value: &str) -> Option<String> {
    let url = reqwest::Url::parse(value).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    Some(value.trim_end_matches('/').to_owned())
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
    fn defaults_follow_the_spec() {
        let c = config(&[]).unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.openrouter_base_url, DEFAULT_BASE_URL);
        assert_eq!(c.rate_limit_window, Duration::from_secs(900));
        assert_eq!(c.rate_limit_max_requests, 100);
        assert_eq!(c.rate_limit_inference_max_requests, 50);
        assert_eq!(c.ws_rate_limit_connections, 5);
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.models_cache_ttl, Duration::from_secs(300));
        assert_eq!(c.cors_origins, CorsOrigins::Any);
        assert_eq!(c.rate_limit_fail_mode, FailMode::Open);
        assert!(c.openrouter_api_key.is_none());
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
        assert_eq!(c.port, 3000);
        assert!(!format!("{c:?}").contains("sk-or-v1-secret"));
    }

    #[test]
    fn origins_are_a_list() {
        let c = config(&[("CORS_ORIGINS", "https://a.example, http://localhost:5173/")]).unwrap();
        assert_eq!(
            c.cors_origins,
            CorsOrigins::List(vec![
                "https://a.example".into(),
                "http://localhost:5173".into()
            ])
        );
    }
}
