//! Typed configuration from environment variables, read once at start.
//!
//! Every variable is parsed through [`Env`], which collects all problems so
//! start-up can report each bad variable at once, naming the variable, the
//! value and what is allowed.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::event::Role;
use crate::fold::RenderOptions;

/// One invalid variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: String,
    pub value: String,
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}={:?}: expected {}",
            self.variable, self.value, self.expected
        )
    }
}

/// Every invalid variable found while reading a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration:")?;
        for error in &self.0 {
            write!(f, "\n  {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Returns the value of one variable, `None` when unset.
type Lookup = Box<dyn Fn(&str) -> Option<String>>;

/// Reads variables from a lookup function (the process environment, or a
/// map in tests) and records every parse failure.
pub struct Env {
    lookup: Lookup,
    errors: Vec<ConfigError>,
}

impl Env {
    /// Reads the process environment. Empty values count as unset, as shells
    /// and compose files often export `VAR=` for "not configured".
    pub fn from_process() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + 'static) -> Self {
        Self {
            lookup: Box::new(move |name| lookup(name).filter(|value| !value.is_empty())),
            errors: Vec::new(),
        }
    }

    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        Self::from_lookup(move |name| {
            owned
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        })
    }

    /// Returns the raw value, if set and not empty.
    pub fn string(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// Parses a variable with `FromStr`; `expected` describes what is allowed.
    pub fn parse<T: FromStr>(&mut self, name: &str, default: T, expected: &str) -> T {
        match self.string(name) {
            None => default,
            Some(raw) => match raw.trim().parse() {
                Ok(value) => value,
                Err(_) => {
                    self.fail(name, &raw, expected);
                    default
                }
            },
        }
    }

    /// Parses an unsigned integer within `min..=max`.
    pub fn integer(&mut self, name: &str, default: u64, min: u64, max: u64, unit: &str) -> u64 {
        let expected = format!("an integer from {min} to {max} ({unit})");
        let value = self.parse(name, default, &expected);
        if self.string(name).is_some() && !(min..=max).contains(&value) {
            let raw = self.string(name).unwrap_or_default();
            self.fail(name, &raw, &expected);
            return default;
        }
        value
    }

    pub fn seconds(&mut self, name: &str, default: u64, max: u64) -> Duration {
        Duration::from_secs(self.integer(name, default, 0, max, "seconds"))
    }

    pub fn millis(&mut self, name: &str, default: u64, min: u64, max: u64) -> Duration {
        Duration::from_millis(self.integer(name, default, min, max, "milliseconds"))
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`).
    pub fn boolean(&mut self, name: &str, default: bool) -> bool {
        match self.string(name) {
            None => default,
            Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    self.fail(name, &raw, "true or false");
                    default
                }
            },
        }
    }

    /// Records an invalid value found by a caller's own check.
    pub fn fail(&mut self, name: &str, value: &str, expected: &str) {
        self.errors.push(ConfigError {
            variable: name.to_owned(),
            value: value.to_owned(),
            expected: expected.to_owned(),
        });
    }

    /// Ends reading: every error found, or `Ok` when there were none.
    pub fn finish(self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

/// Reads `RECENT_BOOKINGS_LIMIT` (default 5, 1..=50) and `DEFAULT_USER_ROLE`
/// (default `student`), which shape every rendered document.
pub fn render_options(env: &mut Env) -> RenderOptions {
    let recent_bookings_limit = env.integer("RECENT_BOOKINGS_LIMIT", 5, 1, 50, "bookings") as usize;
    let default_role: Role = env.parse(
        "DEFAULT_USER_ROLE",
        Role::Student,
        "one of student, teacher, shaala_owner",
    );
    RenderOptions {
        recent_bookings_limit,
        default_role,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_variable_is_reported() {
        let mut env = Env::from_pairs(&[("RECENT_BOOKINGS_LIMIT", "lots"), ("DEFAULT_USER_ROLE", "admin")]);
        render_options(&mut env);
        let errors = env.finish().unwrap_err();
        assert_eq!(errors.0.len(), 2);
        let text = errors.to_string();
        assert!(text.contains("RECENT_BOOKINGS_LIMIT=\"lots\""), "{text}");
        assert!(text.contains("an integer from 1 to 50"), "{text}");
        assert!(text.contains("DEFAULT_USER_ROLE=\"admin\""), "{text}");
    }

    #[test]
    fn out_of_range_integer_is_rejected() {
        let mut env = Env::from_pairs(&[("RECENT_BOOKINGS_LIMIT", "0")]);
        render_options(&mut env);
        assert!(env.finish().is_err());
    }

    #[test]
    fn empty_value_counts_as_unset() {
        let mut env = Env::from_pairs(&[("RECENT_BOOKINGS_LIMIT", "")]);
        let options = render_options(&mut env);
        assert_eq!(options.recent_bookings_limit, 5);
        assert!(env.finish().is_ok());
    }

    #[test]
    fn boolean_accepts_common_spellings() {
        let mut env = Env::from_pairs(&[("A", "yes"), ("B", "0"), ("C", "maybe")]);
        assert!(env.boolean("A", false));
        assert!(!env.boolean("B", true));
        assert!(env.boolean("C", true));
        let errors = env.finish().unwrap_err();
        assert_eq!(errors.0[0].variable, "C");
    }
}
