//! API configuration from environment variables, read once at start.
//!
//! Variable names follow the older Node design where one existed. Every
//! invalid value is collected and reported together; start-up stops.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use sessionfold_common::config::{ConfigErrors, Env, render_options};
use sessionfold_common::fold::RenderOptions;
use sessionfold_common::jwt::{KeySource, VerifierConfig};

use crate::background::BackgroundSettings;
use crate::session::CacheSettings;
use crate::state::SessionSettings;

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub session: SessionSettings,
    pub render: RenderOptions,
    pub cache: CacheSettings,
    /// `CRITICAL_DATA_TIMEOUT` (ms, default 2000): budget for live assembly.
    pub critical_data_timeout: Duration,
    /// `VERIFIED_TOKEN_CACHE_SIZE` (default 100000, 0 = off): tokens kept
    /// after a successful verification, so a repeat skips the signature check.
    pub verified_token_cache_entries: u64,
    pub policy: PolicySettings,
    pub jwt: JwtSettings,
    /// Timeout and cache of the background endpoints.
    pub background: BackgroundSettings,
}

#[derive(Debug, Clone)]
pub struct PolicySettings {
    /// `ROLE_PERMISSIONS_FILE`: JSON policy file; built-in roles when unset.
    pub file: Option<PathBuf>,
    /// `SHAALA_OWNER_APPROVAL_REQUIRED` (default true): overrides the file.
    pub owner_approval_required: Option<bool>,
    /// `ROLE_PERMISSIONS_CACHE_TTL` (seconds, default 60): how often the
    /// policy file is read again, so edits apply without a restart.
    pub reload_interval: Duration,
}

/// Token verification settings. Key material is loaded when the verifier is
/// built so errors name the file.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// `JWT_SECRET`: HS256 shared secret.
    pub secret: Option<String>,
    /// `JWT_PUBLIC_KEY_FILE` + `JWT_ALGORITHM` (RS256, ES256 or EdDSA) +
    /// optional `JWT_KEY_ID`.
    pub public_key: Option<(PathBuf, Algorithm, Option<String>)>,
    /// `JWT_JWKS_FILE`: a JWKS document with one or more public keys.
    pub jwks_file: Option<PathBuf>,
    /// `JWT_ISSUER`: required `iss` when set.
    pub issuer: Option<String>,
    /// `JWT_AUDIENCE`: comma-separated accepted `aud` values.
    pub audience: Vec<String>,
    /// `JWT_LEEWAY_SECONDS` (default 30): clock skew allowed on `exp`/`nbf`.
    pub leeway_secs: u64,
}

impl ApiConfig {
    pub fn from_env(env: &mut Env) -> Self {
        let session = SessionSettings {
            cookie_name: env
                .string("SESSION_COOKIE_NAME")
                .unwrap_or_else(|| "sf_session".to_owned()),
            refresh_margin: env.seconds("TOKEN_REFRESH_MARGIN", 300, 86_400),
            client_cache_ttl: env.seconds("SESSION_CACHE_TTL", 300, 86_400 * 30),
        };
        if !session
            .cookie_name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte))
        {
            let name = session.cookie_name.clone();
            env.fail("SESSION_COOKIE_NAME", &name, "letters, digits, '-', '_' or '.'");
        }
        let render = render_options(env);
        let cache = CacheSettings {
            max_bytes: env.integer("L1_CACHE_MAX_BYTES", 64 * 1024 * 1024, 0, u64::MAX >> 1, "bytes"),
            ttl: env.millis("L1_CACHE_TTL_MS", 1000, 1, 3_600_000),
        };
        let critical_data_timeout = env.millis("CRITICAL_DATA_TIMEOUT", 2000, 1, 60_000);
        let verified_token_cache_entries =
            env.integer("VERIFIED_TOKEN_CACHE_SIZE", 100_000, 0, 10_000_000, "tokens");
        let policy = PolicySettings {
            file: env.string("ROLE_PERMISSIONS_FILE").map(PathBuf::from),
            owner_approval_required: env
                .string("SHAALA_OWNER_APPROVAL_REQUIRED")
                .map(|_| env.boolean("SHAALA_OWNER_APPROVAL_REQUIRED", true)),
            reload_interval: env.seconds("ROLE_PERMISSIONS_CACHE_TTL", 60, 86_400),
        };
        let jwt = jwt_settings(env);
        let background = BackgroundSettings::from_env(env);
        Self {
            session,
            render,
            cache,
            critical_data_timeout,
            verified_token_cache_entries,
            policy,
            jwt,
            background,
        }
    }

    /// Reads the process environment; `Err` lists every invalid variable.
    pub fn from_process_env() -> Result<Self, ConfigErrors> {
        let mut env = Env::from_process();
        let config = Self::from_env(&mut env);
        env.finish().map(|()| config)
    }
}

fn jwt_settings(env: &mut Env) -> JwtSettings {
    let public_key = match (env.string("JWT_PUBLIC_KEY_FILE"), env.string("JWT_ALGORITHM")) {
        (None, None) => None,
        (Some(path), algorithm) => {
            let algorithm = match algorithm.as_deref().unwrap_or("") {
                "RS256" => Some(Algorithm::RS256),
                "ES256" => Some(Algorithm::ES256),
                "EdDSA" => Some(Algorithm::EdDSA),
                other => {
                    env.fail(
                        "JWT_ALGORITHM",
                        other,
                        "RS256, ES256 or EdDSA (required with JWT_PUBLIC_KEY_FILE)",
                    );
                    None
                }
            };
            algorithm.map(|algorithm| (PathBuf::from(path), algorithm, env.string("JWT_KEY_ID")))
        }
        (None, Some(algorithm)) => {
            env.fail(
                "JWT_ALGORITHM",
                &algorithm,
                "to be set together with JWT_PUBLIC_KEY_FILE",
            );
            None
        }
    };
    let audience = env
        .string("JWT_AUDIENCE")
        .map(|raw| {
            raw.split(',')
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    JwtSettings {
        secret: env.string("JWT_SECRET"),
        public_key,
        jwks_file: env.string("JWT_JWKS_FILE").map(PathBuf::from),
        issuer: env.string("JWT_ISSUER"),
        audience,
        leeway_secs: env.integer("JWT_LEEWAY_SECONDS", 30, 0, 86_400, "seconds"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read {variable} file {path}: {source}")]
    Read {
        variable: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(
        "no token verification key configured: set JWT_SECRET, JWT_PUBLIC_KEY_FILE with JWT_ALGORITHM, or JWT_JWKS_FILE"
    )]
    NoKeys,
}

impl JwtSettings {
    /// Reads key files and builds the verifier configuration.
    pub fn verifier_config(&self) -> Result<VerifierConfig, KeyFileError> {
        let mut keys = Vec::new();
        if let Some(secret) = &self.secret {
            keys.push(KeySource::Hs256Secret(secret.as_bytes().to_vec()));
        }
        if let Some((path, algorithm, kid)) = &self.public_key {
            let pem = read_file("JWT_PUBLIC_KEY_FILE", path)?;
            keys.push(KeySource::PublicKeyPem {
                pem,
                algorithm: *algorithm,
                kid: kid.clone(),
            });
        }
        if let Some(path) = &self.jwks_file {
            keys.push(KeySource::Jwks(read_file("JWT_JWKS_FILE", path)?));
        }
        if keys.is_empty() {
            return Err(KeyFileError::NoKeys);
        }
        Ok(VerifierConfig {
            keys,
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway_secs: self.leeway_secs,
        })
    }
}

fn read_file(variable: &'static str, path: &PathBuf) -> Result<String, KeyFileError> {
    std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
        variable,
        path: path.display().to_string(),
        source,
    })
}

/// Parses a listen address, naming the flag or variable on failure.
pub fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|_| format!("invalid listen address {value:?}: expected IP:PORT, e.g. 127.0.0.1:4001"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_without_key_file_is_rejected() {
        let mut env = Env::from_pairs(&[("JWT_ALGORITHM", "RS256")]);
        ApiConfig::from_env(&mut env);
        let text = env.finish().unwrap_err().to_string();
        assert!(text.contains("JWT_ALGORITHM"), "{text}");
    }

    #[test]
    fn unsupported_algorithm_is_rejected() {
        let mut env = Env::from_pairs(&[
            ("JWT_PUBLIC_KEY_FILE", "/tmp/key.pem"),
            ("JWT_ALGORITHM", "HS512"),
        ]);
        ApiConfig::from_env(&mut env);
        let text = env.finish().unwrap_err().to_string();
        assert!(text.contains("JWT_ALGORITHM=\"HS512\""), "{text}");
        assert!(text.contains("RS256, ES256 or EdDSA"), "{text}");
    }

    #[test]
    fn audience_list_is_split_on_commas() {
        let mut env = Env::from_pairs(&[("JWT_AUDIENCE", "web, mobile ,")]);
        let config = ApiConfig::from_env(&mut env);
        assert_eq!(config.jwt.audience, vec!["web", "mobile"]);
    }

    #[test]
    fn invalid_cookie_name_is_rejected() {
        let mut env = Env::from_pairs(&[("SESSION_COOKIE_NAME", "a;b")]);
        ApiConfig::from_env(&mut env);
        assert!(env.finish().is_err());
    }

    #[test]
    fn missing_keys_are_reported() {
        let mut env = Env::from_pairs(&[]);
        let config = ApiConfig::from_env(&mut env);
        assert!(matches!(config.jwt.verifier_config(), Err(KeyFileError::NoKeys)));
    }
}
