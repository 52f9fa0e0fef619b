//! MongoDB connection settings from environment variables.

use std::fmt;

use mongodb::options::{ClientOptions, ConnectionString};
use mongodb::{Client, Database};

use crate::config::Env;

/// Database used when `MONGODB_DATABASE` is unset.
pub const DEFAULT_DATABASE: &str = "sessionfold";

/// Connection settings of the system of record. `Debug` hides the password.
#[derive(Clone)]
pub struct MongoConfig {
    /// `MONGODB_URI`: a `mongodb://` or `mongodb+srv://` connection string.
    pub uri: String,
    /// `MONGODB_DATABASE` (default `sessionfold`).
    pub database: String,
}

impl fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoConfig")
            .field("uri", &redact_uri(&self.uri))
            .field("database", &self.database)
            .finish()
    }
}

impl MongoConfig {
    /// Reads `MONGODB_URI` and `MONGODB_DATABASE`; `None` when
    /// `MONGODB_URI` is unset (MongoDB not configured). The URI is parsed
    /// here, without network access, so a typo stops start-up.
    pub fn from_env(env: &mut Env) -> Option<Self> {
        let database = env
            .string("MONGODB_DATABASE")
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        if let Err(problem) = check_database_name(&database) {
            env.fail("MONGODB_DATABASE", &database, problem);
        }
        let uri = env.string("MONGODB_URI")?;
        if ConnectionString::parse(&uri).is_err() {
            // The parser's message may quote the URI, so only the redacted
            // form is reported.
            env.fail(
                "MONGODB_URI",
                &redact_uri(&uri),
                "a MongoDB connection string such as mongodb://host:27017/?replicaSet=rs0 or mongodb+srv://cluster.example.net",
            );
        }
        Some(Self { uri, database })
    }

    /// Creates a client (connections open lazily, on first use) and returns
    /// the configured database.
    pub async fn connect(&self) -> Result<Database, mongodb::error::Error> {
        let mut options = ClientOptions::parse(&self.uri).await?;
        if options.app_name.is_none() {
            // Shows up in server logs and `currentOp`, to tell our reads apart.
            options.app_name = Some("sessionfold".to_owned());
        }
        let client = Client::with_options(options)?;
        Ok(client.database(&self.database))
    }
}

/// MongoDB's database name rules: 1 to 63 bytes, none of `/\. "$` and no NUL.
fn check_database_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 63 {
        return Err("a database name of 1 to 63 bytes");
    }
    if name.contains(['/', '\\', '.', ' ', '"', '$', '\0']) {
        return Err("a database name without / \\ . space \" $ or NUL");
    }
    Ok(())
}

/// Returns the URI with the password replaced by `***`, safe to log.
pub fn redact_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{hosts}{tail}")
        }
        None => uri.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_uri_means_not_configured() {
        let mut env = Env::from_pairs(&[]);
        assert!(MongoConfig::from_env(&mut env).is_none());
        assert!(env.finish().is_ok());
    }

    #[test]
    fn database_defaults_to_sessionfold() {
        let mut env = Env::from_pairs(&[("MONGODB_URI", "mongodb://127.0.0.1:27017/?replicaSet=rs0")]);
        let config = MongoConfig::from_env(&mut env).unwrap();
        assert_eq!(config.database, "sessionfold");
        assert!(env.finish().is_ok());
    }

    #[test]
    fn invalid_uri_is_reported_without_password() {
        let mut env = Env::from_pairs(&[("MONGODB_URI", "mongo://app:s3cret@db:27017")]);
        MongoConfig::from_env(&mut env);
        let text = env.finish().unwrap_err().to_string();
        assert!(text.contains("MONGODB_URI"), "{text}");
        assert!(text.contains("app:***@db:27017"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn invalid_database_name_is_reported() {
        let mut env = Env::from_pairs(&[
            ("MONGODB_URI", "mongodb://127.0.0.1:27017"),
            ("MONGODB_DATABASE", "session.fold"),
        ]);
        MongoConfig::from_env(&mut env);
        let text = env.finish().unwrap_err().to_string();
        assert!(text.contains("MONGODB_DATABASE=\"session.fold\""), "{text}");
    }

    #[test]
    fn debug_output_hides_the_password() {
        let config = MongoConfig {
            uri: "mongodb://app:s3cret@db1:27017,db2:27017/admin?replicaSet=rs0".to_owned(),
            database: "sessionfold".to_owned(),
        };
        let text = format!("{config:?}");
        assert!(
            text.contains("mongodb://app:***@db1:27017,db2:27017/admin?replicaSet=rs0"),
            "{text}"
        );
        assert!(!text.contains("s3cret"));
    }

    #[test]
    fn redact_keeps_uri_without_credentials() {
        assert_eq!(redact_uri("mongodb://db:27017/x"), "mongodb://db:27017/x");
    }
}
