//! Query-string parameters with the documented errors: a bad `limit` is a 400 naming
//! `limit` (`docs/errors.md`).

use llm_proxy_shared::ApiError;
use llm_proxy_shared::error::quote;

/// The largest page any catalogue endpoint returns.
pub const MAX_LIMIT: usize = 100;

pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(query: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The last value given for `name`, trimmed; empty counts as absent.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// 1 to [`MAX_LIMIT`].
    pub fn limit(&self, name: &str, default: usize) -> Result<usize, ApiError> {
        match self.text(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::validation(
                        name,
                        format!(
                            "{name} must be a whole number from 1 to {MAX_LIMIT}, got {:?}",
                            quote(v)
                        ),
                    )
                }),
        }
    }

    /// 0 or more.
    pub fn offset(&self, name: &str) -> Result<usize, ApiError> {
        match self.text(name) {
            None => Ok(0),
            Some(v) => v.parse::<usize>().map_err(|_| {
                ApiError::validation(
                    name,
                    format!(
                        "{name} must be a whole number of 0 or more, got {:?}",
                        quote(v)
                    ),
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_offsets() {
        let p = Params::parse(Some("limit=5&offset=10&search=gpt%204&empty="));
        assert_eq!(p.limit("limit", 50).unwrap(), 5);
        assert_eq!(p.offset("offset").unwrap(), 10);
        assert_eq!(p.text("search"), Some("gpt 4"));
        assert_eq!(p.text("empty"), None);
        assert_eq!(Params::parse(None).limit("limit", 50).unwrap(), 50);
        for bad in ["limit=0", "limit=101", "limit=abc", "limit=-1", "limit=1.5"] {
            assert!(
                Params::parse(Some(bad)).limit("limit", 50).is_err(),
                "{bad}"
            );
        }
        assert!(Params::parse(Some("offset=-1")).offset("offset").is_err());
    }
}
