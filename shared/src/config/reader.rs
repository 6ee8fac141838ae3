//! Reading one setting: empty is unset, absent is the default, anything else must parse.

use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{name}={value:?} is not valid: expected {expected}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub expected: String,
}

pub(super) struct Reader<'a, F: Fn(&str) -> Option<String>> {
    pub(super) lookup: &'a F,
}

impl<F: Fn(&str) -> Option<String>> Reader<'_, F> {
    /// The trimmed value; `.env` files write `KEY=` for "not given", so empty is unset.
    pub(super) fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub(super) fn parse<T>(
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

    /// One of a fixed set of words, e.g. `open` or `closed`.
    pub(super) fn choice<T: Copy>(
        &self,
        name: &'static str,
        default: T,
        choices: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        let words: Vec<&str> = choices.iter().map(|(word, _)| *word).collect();
        let expected = match words.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("one of {}, {last}", rest.join(", ")),
            None => String::new(),
        };
        self.parse(name, default, &expected, |v| {
            choices.iter().find(|(word, _)| *word == v).map(|(_, t)| *t)
        })
    }

    pub(super) fn millis(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
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

    /// A sum of money in USD, 0 or more (0 turns a budget off).
    pub(super) fn dollars(&self, name: &'static str, default: f64) -> Result<f64, ConfigError> {
        self.parse(
            name,
            default,
            "an amount in USD such as 0.50 (0 turns it off)",
            |v| v.parse::<f64>().ok().filter(|d| d.is_finite() && *d >= 0.0),
        )
    }

    pub(super) fn count(&self, name: &'static str, default: u32) -> Result<u32, ConfigError> {
        self.parse(name, default, "a whole number, at least 1", |v| {
            v.parse::<u32>().ok().filter(|n| *n >= 1)
        })
    }
}
