//! Query-string parameters with the documented errors (`docs/errors.md`): a bad `limit`
//! is a 400 naming `limit`; a `limit` over the maximum is clamped, not refused;
//! parameters the proxy does not know are ignored, as OpenRouter ignores them.

use llm_proxy_shared::ApiError;
use llm_proxy_shared::catalog::{ModelQuery, Range, Sort};
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
        self.given(name).filter(|v| !v.is_empty())
    }

    /// The last value given for `name`, trimmed, empty or not: for a number, `limit=` is
    /// not a whole number, so it is a 400.
    fn given(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
    }

    /// Every comma-separated value of every `name`, lower-cased.
    fn list(&self, names: &[&str]) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| names.contains(&k.as_str()))
            .flat_map(|(_, v)| v.split(','))
            .map(|v| v.trim().to_lowercase())
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// 1 or more, `default` when absent; more than [`MAX_LIMIT`] is [`MAX_LIMIT`].
    pub fn limit(&self, name: &str, default: usize) -> Result<usize, ApiError> {
        match self.given(name) {
            None => Ok(default),
            // Digits only, not all zeros; however many, at most MAX_LIMIT are returned.
            Some(v) => (v.bytes().all(|b| b.is_ascii_digit()) && v.bytes().any(|b| b != b'0'))
                .then(|| v.parse::<usize>().map_or(MAX_LIMIT, |n| n.min(MAX_LIMIT)))
                .ok_or_else(|| {
                    ApiError::validation(
                        name,
                        format!("{name} must be a whole number of at least 1 (at most {MAX_LIMIT} are returned), got {:?}", quote(v)),
                    )
                }),
        }
    }

    /// 0 or more.
    pub fn offset(&self, name: &str) -> Result<usize, ApiError> {
        match self.given(name) {
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

    /// A number of 0 or more, if given.
    fn number(&self, name: &str) -> Result<Option<f64>, ApiError> {
        match self.given(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .map(Some)
                .ok_or_else(|| {
                    ApiError::validation(
                        name,
                        format!("{name} must be a number of 0 or more, got {:?}", quote(v)),
                    )
                }),
        }
    }

    fn range(&self, min: &str, max: &str) -> Result<Range, ApiError> {
        Ok(Range {
            min: self.number(min)?,
            max: self.number(max)?,
        })
    }

    /// The filters and sort of a catalogue list (`docs/http-api.md`).
    pub fn model_query(&self) -> Result<ModelQuery, ApiError> {
        let output_modalities = self.list(&["output_modalities"]);
        Ok(ModelQuery {
            authors: self.list(&["provider", "model_authors", "providers"]),
            search: self
                .text("search")
                .or_else(|| self.text("q"))
                .map(str::to_lowercase),
            supported_parameters: self.list(&["supported_parameters"]),
            input_modalities: self.list(&["input_modalities"]),
            // "all", as the catalogue the proxy holds, is no filter.
            output_modalities: if output_modalities.iter().any(|m| m == "all") {
                Vec::new()
            } else {
                output_modalities
            },
            min_context: self.number("context")?.map(|n| n as u64),
            prompt_price: self.range("min_price", "max_price")?,
            completion_price: self.range("min_output_price", "max_output_price")?,
            age_days: self.range("min_age_days", "max_age_days")?,
            arch: self.text("arch").map(str::to_lowercase),
            intelligence_index: self.range("min_intelligence_index", "max_intelligence_index")?,
            coding_index: self.range("min_coding_index", "max_coding_index")?,
            agentic_index: self.range("min_agentic_index", "max_agentic_index")?,
            sort: self
                .text("sort")
                .and_then(Sort::from_name)
                .unwrap_or_default(),
        })
    }

    /// The query string with `offset` (and `limit`) replaced, for a next-page link.
    pub fn with_page(&self, offset: usize, limit: usize) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.0.iter().filter(|(k, _)| k != "offset" && k != "limit") {
            query.append_pair(k, v);
        }
        query.append_pair("offset", &offset.to_string());
        query.append_pair("limit", &limit.to_string());
        query.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_clamped_offsets_checked() {
        let p = Params::parse(Some("limit=5&offset=10&search=gpt%204&empty="));
        assert_eq!(p.limit("limit", 50).unwrap(), 5);
        assert_eq!(p.offset("offset").unwrap(), 10);
        assert_eq!(p.text("search"), Some("gpt 4"));
        assert_eq!(p.text("empty"), None);
        assert_eq!(Params::parse(None).limit("limit", 50).unwrap(), 50);
        assert_eq!(
            Params::parse(Some("limit=500")).limit("limit", 50).unwrap(),
            100
        );
        assert_eq!(
            Params::parse(Some("limit=99999999999999999999999"))
                .limit("limit", 50)
                .unwrap(),
            100
        );
        for bad in [
            "limit=0",
            "limit=abc",
            "limit=-1",
            "limit=1.5",
            "limit=",
            "limit=5&limit=",
        ] {
            assert!(
                Params::parse(Some(bad)).limit("limit", 50).is_err(),
                "{bad}"
            );
        }
        assert!(Params::parse(Some("offset=-1")).offset("offset").is_err());
        assert!(Params::parse(Some("offset=")).offset("offset").is_err());
    }

    #[test]
    fn the_query_reads_openrouters_parameters() {
        let p = Params::parse(Some(
            "supported_parameters=tools,Temperature&input_modalities=image&output_modalities=all\
             &q=GPT&context=100000&max_price=5&sort=newest&model_authors=openai,anthropic&unknown=1",
        ));
        let q = p.model_query().unwrap();
        assert_eq!(q.supported_parameters, ["tools", "temperature"]);
        assert_eq!(q.input_modalities, ["image"]);
        assert!(q.output_modalities.is_empty());
        assert_eq!(q.search.as_deref(), Some("gpt"));
        assert_eq!(q.min_context, Some(100_000));
        assert_eq!(q.prompt_price.max, Some(5.0));
        assert_eq!(q.sort, Sort::Newest);
        assert_eq!(q.authors, ["openai", "anthropic"]);
        assert!(
            Params::parse(Some("max_price=cheap"))
                .model_query()
                .is_err()
        );
        assert_eq!(
            Params::parse(Some("q=x&limit=10&offset=0")).with_page(10, 10),
            "q=x&offset=10&limit=10"
        );
    }
}
