//! Redis store settings from environment variables.

use std::fmt;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use crate::config::Env;

/// Upper bound of `PROJECTION_TTL`: a longer value is almost certainly a
/// unit mistake (milliseconds given as seconds).
const MAX_PROJECTION_TTL_SECS: u64 = 365 * 86_400;
/// Same bound the API applies to `SESSION_CACHE_TTL`, so both read it alike.
const MAX_SESSION_CACHE_TTL_SECS: u64 = 30 * 86_400;

/// Connection and expiry settings of the Redis projection store.
#[derive(Clone)]
pub struct RedisConfig {
    /// One server, or the seed nodes of a cluster. May carry credentials, so
    /// `Debug` prints only the addresses.
    pub nodes: Vec<ConnectionInfo>,
    /// Talk the cluster protocol (slot routing) instead of to one server.
    pub cluster: bool,
    /// Expiry of projected documents, or `None` to keep them until overwritten.
    /// Fold state never expires, because folding later events onto an empty
    /// state would lose facts.
    pub projection_ttl: Option<Duration>,
    /// Expiry of documents backfilled from live assembly. Zero disables
    /// backfill, since such a document has no fold state keeping it current.
    pub backfill_ttl: Duration,
    /// Bound on every store operation, connecting included.
    pub command_timeout: Duration,
}

impl RedisConfig {
    /// Builds settings for one server at `url`, with the defaults of
    /// [`RedisConfig::from_env`]. For tests and tools.
    pub fn for_url(url: &str) -> redis::RedisResult<Self> {
        Ok(Self {
            nodes: vec![url.into_connection_info()?],
            cluster: false,
            projection_ttl: None,
            backfill_ttl: Duration::from_secs(300),
            command_timeout: Duration::from_millis(1000),
        })
    }

    /// Reads the store settings:
    ///
    /// - `REDIS_URL`: a `redis://` or `rediss://` URL. Several, comma-separated,
    ///   name the seed nodes of a cluster. Without it, `REDIS_HOST` (default
    ///   127.0.0.1) and `REDIS_PORT` (default 6379) name one server.
    ///   `rediss://` checks the server certificate against the system roots
    ///   (`SSL_CERT_FILE` and `SSL_CERT_DIR` override them).
    /// - `REDIS_PASSWORD`: used for every node whose URL has no password.
    /// - `REDIS_CLUSTER` (default false, implied by several URLs).
    /// - `PROJECTION_TTL` (seconds, 0 = keep forever, default 0).
    /// - `SESSION_CACHE_TTL` (seconds, default 300): expiry of backfilled documents.
    /// - `REDIS_COMMAND_TIMEOUT_MS` (default 1000).
    pub fn from_env(env: &mut Env) -> Self {
        let password = env.string("REDIS_PASSWORD");
        let mut nodes = match env.string("REDIS_URL") {
            Some(raw) => {
                if env.string("REDIS_HOST").is_some() || env.string("REDIS_PORT").is_some() {
                    env.fail(
                        "REDIS_HOST",
                        &env.string("REDIS_HOST").unwrap_or_default(),
                        "unset when REDIS_URL is set (REDIS_URL names the servers; set one or the other)",
                    );
                }
                parse_urls(env, &raw)
            }
            None => {
                let host = env.string("REDIS_HOST").unwrap_or_else(|| "127.0.0.1".to_owned());
                let port = env.integer("REDIS_PORT", 6379, 1, 65_535, "TCP port") as u16;
                vec![tcp_node(host, port)]
            }
        };
        if let Some(password) = password {
            nodes = nodes
                .into_iter()
                .map(|node| {
                    if node.redis_settings().password().is_some() {
                        return node;
                    }
                    let settings = node.redis_settings().clone().set_password(&password);
                    node.set_redis_settings(settings)
                })
                .collect();
        }

        let explicit_cluster = env.string("REDIS_CLUSTER").is_some();
        let cluster_flag = env.boolean("REDIS_CLUSTER", false);
        if explicit_cluster && !cluster_flag && nodes.len() > 1 {
            env.fail(
                "REDIS_CLUSTER",
                &env.string("REDIS_CLUSTER").unwrap_or_default(),
                "true, or a single URL in REDIS_URL (several URLs name cluster seed nodes)",
            );
        }
        let cluster = cluster_flag || nodes.len() > 1;

        let projection_ttl = env.seconds("PROJECTION_TTL", 0, MAX_PROJECTION_TTL_SECS);
        let backfill_ttl = env.seconds("SESSION_CACHE_TTL", 300, MAX_SESSION_CACHE_TTL_SECS);
        let command_timeout = env.millis("REDIS_COMMAND_TIMEOUT_MS", 1000, 1, 60_000);

        Self {
            nodes,
            cluster,
            projection_ttl: (!projection_ttl.is_zero()).then_some(projection_ttl),
            backfill_ttl,
            command_timeout,
        }
    }

    /// Returns the node addresses as `host:port`, without credentials.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes.iter().map(|node| node.addr().to_string()).collect()
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let password_set = self
            .nodes
            .iter()
            .any(|node| node.redis_settings().password().is_some());
        f.debug_struct("RedisConfig")
            .field("nodes", &self.addresses())
            .field("password", &if password_set { "<redacted>" } else { "<none>" })
            .field("cluster", &self.cluster)
            .field("projection_ttl", &self.projection_ttl)
            .field("backfill_ttl", &self.backfill_ttl)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

fn parse_urls(env: &mut Env, raw: &str) -> Vec<ConnectionInfo> {
    let mut nodes = Vec::new();
    for url in raw.split(',').map(str::trim).filter(|url| !url.is_empty()) {
        let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
        let parsed = if scheme_ok {
            url.into_connection_info().map_err(|error| error.to_string())
        } else {
            Err("unsupported scheme".to_owned())
        };
        match parsed {
            Ok(node) => nodes.push(node),
            Err(reason) => env.fail(
                "REDIS_URL",
                &redact_url(url),
                &format!(
                    "comma-separated redis://[user:password@]host[:port][/db] or rediss:// URLs ({reason})"
                ),
            ),
        }
    }
    if nodes.is_empty() {
        // Keeps the config usable while further errors are collected. Start-up
        // stops on the error recorded above anyway.
        nodes.push(tcp_node("127.0.0.1".to_owned(), 6379));
    }
    nodes
}

fn tcp_node(host: String, port: u16) -> ConnectionInfo {
    ConnectionAddr::Tcp(host, port)
        .into_connection_info()
        .expect("a TCP address always converts to connection info")
}

/// Replaces the password of a URL's user info, so a rejected URL can be
/// shown in an error message.
fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let Some(at) = url[authority_start..].rfind('@') else {
        return url.to_owned();
    };
    let user_info = &url[authority_start..authority_start + at];
    let user = user_info.split_once(':').map_or(user_info, |(user, _)| user);
    let redacted = if user_info.contains(':') {
        format!("{user}:<redacted>")
    } else {
        user.to_owned()
    };
    format!(
        "{}{}{}",
        &url[..authority_start],
        redacted,
        &url[authority_start + at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_local_server() {
        let mut env = Env::from_pairs(&[]);
        let config = RedisConfig::from_env(&mut env);
        env.finish().unwrap();
        assert_eq!(config.addresses(), vec!["127.0.0.1:6379"]);
        assert!(!config.cluster);
        assert_eq!(config.projection_ttl, None);
        assert_eq!(config.backfill_ttl, Duration::from_secs(300));
        assert_eq!(config.command_timeout, Duration::from_millis(1000));
    }

    #[test]
    fn several_urls_imply_cluster() {
        let mut env = Env::from_pairs(&[("REDIS_URL", "redis://10.0.0.1:7000, redis://10.0.0.2:7001")]);
        let config = RedisConfig::from_env(&mut env);
        env.finish().unwrap();
        assert!(config.cluster);
        assert_eq!(config.addresses(), vec!["10.0.0.1:7000", "10.0.0.2:7001"]);
    }

    #[test]
    fn tls_url_is_accepted() {
        let mut env = Env::from_pairs(&[("REDIS_URL", "rediss://cache.example.com:6380")]);
        let config = RedisConfig::from_env(&mut env);
        env.finish().unwrap();
        assert!(matches!(config.nodes[0].addr(), ConnectionAddr::TcpTls { .. }));
    }

    #[test]
    fn password_applies_to_nodes_without_one() {
        let mut env = Env::from_pairs(&[
            ("REDIS_URL", "redis://:inline@10.0.0.1:7000,redis://10.0.0.2:7001"),
            ("REDIS_PASSWORD", "from-env"),
        ]);
        let config = RedisConfig::from_env(&mut env);
        env.finish().unwrap();
        let passwords: Vec<_> = config
            .nodes
            .iter()
            .map(|node| node.redis_settings().password().map(str::to_owned))
            .collect();
        assert_eq!(
            passwords,
            vec![Some("inline".to_owned()), Some("from-env".to_owned())]
        );
    }

    #[test]
    fn debug_output_hides_password() {
        let mut env = Env::from_pairs(&[("REDIS_HOST", "cache"), ("REDIS_PASSWORD", "hunter2")]);
        let config = RedisConfig::from_env(&mut env);
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("cache:6379"), "{text}");
    }

    #[test]
    fn invalid_url_error_hides_password() {
        let mut env = Env::from_pairs(&[("REDIS_URL", "http://user:hunter2@cache:6379")]);
        RedisConfig::from_env(&mut env);
        let text = env.finish().unwrap_err().to_string();
        assert!(
            text.contains("REDIS_URL=\"http://user:<redacted>@cache:6379\""),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn invalid_numbers_are_reported() {
        let mut env = Env::from_pairs(&[
            ("REDIS_PORT", "70000"),
            ("PROJECTION_TTL", "-1"),
            ("REDIS_COMMAND_TIMEOUT_MS", "0"),
            ("REDIS_CLUSTER", "maybe"),
        ]);
        RedisConfig::from_env(&mut env);
        let errors = env.finish().unwrap_err();
        let variables: Vec<_> = errors.0.iter().map(|error| error.variable.as_str()).collect();
        assert_eq!(
            variables,
            vec![
                "REDIS_PORT",
                "REDIS_CLUSTER",
                "PROJECTION_TTL",
                "REDIS_COMMAND_TIMEOUT_MS"
            ]
        );
    }

    #[test]
    fn url_and_host_together_are_rejected() {
        let mut env = Env::from_pairs(&[("REDIS_URL", "redis://cache:6379"), ("REDIS_HOST", "other")]);
        RedisConfig::from_env(&mut env);
        let errors = env.finish().unwrap_err();
        assert_eq!(errors.0[0].variable, "REDIS_HOST");
    }

    #[test]
    fn explicit_single_node_with_several_urls_is_rejected() {
        let mut env = Env::from_pairs(&[
            ("REDIS_URL", "redis://a:7000,redis://b:7001"),
            ("REDIS_CLUSTER", "false"),
        ]);
        RedisConfig::from_env(&mut env);
        let errors = env.finish().unwrap_err();
        assert_eq!(errors.0[0].variable, "REDIS_CLUSTER");
    }

    #[test]
    fn projection_ttl_zero_keeps_documents() {
        let mut env = Env::from_pairs(&[("PROJECTION_TTL", "0"), ("SESSION_CACHE_TTL", "5")]);
        let config = RedisConfig::from_env(&mut env);
        env.finish().unwrap();
        assert_eq!(config.projection_ttl, None);
        assert_eq!(config.backfill_ttl, Duration::from_secs(5));
    }
}
