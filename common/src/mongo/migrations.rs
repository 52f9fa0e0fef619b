//! Schema migrations: ordered, idempotent JSON files in `migrations/`.
//!
//! A migration file is named `<NNNN>_<name>.json` and contains
//!
//! ```json
//! { "description": "...",
//!   "steps": [ { "command": { "createIndexes": "users", ... } },
//!              { "command": { "create": "users" }, "ignoreErrorCodes": [48] } ] }
//! ```
//!
//! Each step is one database command, written in MongoDB Extended JSON as
//! it would be typed into `db.runCommand`. Only `create`, `createIndexes`
//! and `collMod` are allowed, because those can be made idempotent: a
//! `createIndexes` with an identical spec and a `collMod` that sets the same
//! options again change nothing, and every `create` must ignore error 48
//! (`NamespaceExists`). Applied migrations are recorded in the `migrations`
//! collection (`_id` = migration id, `appliedAt`, `checksum`,
//! `description`); the checksum is the SHA-256 of the file bytes, so an
//! edited file that was already applied is detected.
//!
//! Planning ([`plan`]) is pure; [`apply`] runs the plan against a server.

use std::path::Path;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::Database;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::options::WriteConcern;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tracing::info;

use super::{MIGRATIONS, error_code};

/// `NamespaceExists`: `create` of a collection that exists.
pub const NAMESPACE_EXISTS: i32 = 48;

/// Commands a migration step may run.
const ALLOWED_COMMANDS: &[&str] = &["create", "createIndexes", "collMod"];

/// The migrations shipped with this build, so a deployed binary needs no
/// files next to it. A test checks this list against the directory.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "0001_indexes.json",
        include_str!("../../../migrations/0001_indexes.json"),
    ),
    (
        "0002_validators.json",
        include_str!("../../../migrations/0002_validators.json"),
    ),
    (
        "0003_change_stream_pre_images.json",
        include_str!("../../../migrations/0003_change_stream_pre_images.json"),
    ),
];

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MigrationError {
    #[error("migration file {file}: {problem}")]
    InvalidFile { file: String, problem: String },
    #[error("two migration files have the id {0}")]
    DuplicateId(String),
    #[error(
        "migration {id} was changed after it was applied (recorded checksum {recorded}, file checksum {file}); \
         restore the file and put the change in a new migration"
    )]
    ChangedAfterApply {
        id: String,
        recorded: String,
        file: String,
    },
    #[error(
        "migration {pending} is not applied, but the later migration {applied} is; \
         give {pending} an id after {applied}, or apply it by hand and record it"
    )]
    OutOfOrder { pending: String, applied: String },
}

/// One step: a database command and the server error codes that mean "already done".
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub command: Document,
    pub ignore_error_codes: Vec<i32>,
}

impl Step {
    /// Returns the command name, which is the first key of the command document.
    pub fn command_name(&self) -> &str {
        self.command.keys().next().map_or("", String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Migration {
    /// The file name without `.json`, e.g. `0001_indexes`.
    pub id: String,
    pub description: String,
    /// SHA-256 of the file bytes, lowercase hex.
    pub checksum: String,
    pub steps: Vec<Step>,
}

/// A migration recorded in the `migrations` collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    pub id: String,
    pub checksum: String,
}

/// The outcome of [`plan`].
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Migrations to run, in id order.
    pub pending: Vec<Migration>,
    /// Recorded migrations this build has no file for (applied by a newer
    /// build); reported, not an error.
    pub unknown_applied: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileContent {
    description: String,
    steps: Vec<FileStep>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileStep {
    command: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    ignore_error_codes: Vec<i32>,
}

fn checksum(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn is_valid_id(id: &str) -> bool {
    let Some((number, name)) = id.split_once('_') else {
        return false;
    };
    number.len() == 4
        && number.bytes().all(|byte| byte.is_ascii_digit())
        && !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
}

/// Parses one migration file and checks every step.
pub fn parse_migration(file_name: &str, bytes: &[u8]) -> Result<Migration, MigrationError> {
    let invalid = |problem: String| MigrationError::InvalidFile {
        file: file_name.to_owned(),
        problem,
    };
    let id = file_name
        .strip_suffix(".json")
        .filter(|id| is_valid_id(id))
        .ok_or_else(|| {
            invalid("the name must look like 0001_some_name.json (4 digits, lowercase words)".to_owned())
        })?;
    let content: FileContent = serde_json::from_slice(bytes)
        .map_err(|error| invalid(format!("not a migration document: {error}")))?;
    if content.steps.is_empty() {
        return Err(invalid("it has no steps".to_owned()));
    }

    let mut steps = Vec::with_capacity(content.steps.len());
    for (index, step) in content.steps.into_iter().enumerate() {
        let command = Document::try_from(step.command)
            .map_err(|error| invalid(format!("step {index}: invalid Extended JSON: {error}")))?;
        let step = Step {
            command,
            ignore_error_codes: step.ignore_error_codes,
        };
        let name = step.command_name();
        if !ALLOWED_COMMANDS.contains(&name) {
            return Err(invalid(format!(
                "step {index}: command {name:?} is not allowed; the first key must be one of {}",
                ALLOWED_COMMANDS.join(", ")
            )));
        }
        if !matches!(step.command.get(name), Some(Bson::String(collection)) if !collection.is_empty()) {
            return Err(invalid(format!("step {index}: {name} must name a collection")));
        }
        if name == "create" && !step.ignore_error_codes.contains(&NAMESPACE_EXISTS) {
            return Err(invalid(format!(
                "step {index}: create must list {NAMESPACE_EXISTS} (NamespaceExists) in ignoreErrorCodes, so a rerun succeeds"
            )));
        }
        steps.push(step);
    }
    Ok(Migration {
        id: id.to_owned(),
        description: content.description,
        checksum: checksum(bytes),
        steps,
    })
}

/// Parses a set of files and sorts them by id.
pub fn parse_all<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Vec<Migration>, MigrationError> {
    let mut migrations = files
        .into_iter()
        .map(|(name, bytes)| parse_migration(name, bytes))
        .collect::<Result<Vec<_>, _>>()?;
    migrations.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(pair) = migrations.windows(2).find(|pair| pair[0].id == pair[1].id) {
        return Err(MigrationError::DuplicateId(pair[0].id.clone()));
    }
    Ok(migrations)
}

/// Parses the migrations compiled into this build.
pub fn embedded() -> Result<Vec<Migration>, MigrationError> {
    parse_all(EMBEDDED.iter().map(|(name, text)| (*name, text.as_bytes())))
}

/// Reads every `*.json` file of a directory.
pub fn load_dir(dir: &Path) -> Result<Vec<Migration>, MigrationError> {
    let unreadable = |problem: String| MigrationError::InvalidFile {
        file: dir.display().to_string(),
        problem,
    };
    let mut files = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|error| unreadable(format!("cannot read directory: {error}")))?;
    for entry in entries {
        let path = entry
            .map_err(|error| unreadable(format!("cannot read directory: {error}")))?
            .path();
        if path.extension().and_then(|ext| ext.to_str()) != Some("json") {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| unreadable(format!("file name {} is not UTF-8", path.display())))?
            .to_owned();
        let bytes = std::fs::read(&path).map_err(|error| MigrationError::InvalidFile {
            file: path.display().to_string(),
            problem: format!("cannot read: {error}"),
        })?;
        files.push((name, bytes));
    }
    parse_all(
        files
            .iter()
            .map(|(name, bytes)| (name.as_str(), bytes.as_slice())),
    )
}

/// Decides which migrations to run, given those already applied. Fails on
/// an applied migration whose file changed, and on a pending migration that
/// sorts before an applied one, because the later migration was written
/// expecting it to have run first.
pub fn plan(available: &[Migration], applied: &[AppliedMigration]) -> Result<Plan, MigrationError> {
    for record in applied {
        if let Some(migration) = available.iter().find(|migration| migration.id == record.id)
            && migration.checksum != record.checksum
        {
            return Err(MigrationError::ChangedAfterApply {
                id: record.id.clone(),
                recorded: record.checksum.clone(),
                file: migration.checksum.clone(),
            });
        }
    }
    let latest_applied = applied
        .iter()
        .filter(|record| available.iter().any(|migration| migration.id == record.id))
        .map(|record| record.id.as_str())
        .max();
    let pending: Vec<Migration> = available
        .iter()
        .filter(|migration| !applied.iter().any(|record| record.id == migration.id))
        .cloned()
        .collect();
    if let (Some(first), Some(latest)) = (pending.first(), latest_applied)
        && first.id.as_str() < latest
    {
        return Err(MigrationError::OutOfOrder {
            pending: first.id.clone(),
            applied: latest.to_owned(),
        });
    }
    let mut unknown_applied: Vec<String> = applied
        .iter()
        .filter(|record| !available.iter().any(|migration| migration.id == record.id))
        .map(|record| record.id.clone())
        .collect();
    unknown_applied.sort();
    Ok(Plan {
        pending,
        unknown_applied,
    })
}

/// Builds the document recorded in `migrations` once a migration has run.
pub fn record_document(migration: &Migration, applied_at: DateTime<Utc>) -> Document {
    doc! {
        "_id": migration.id.as_str(),
        "appliedAt": bson::DateTime::from_millis(applied_at.timestamp_millis()),
        "checksum": migration.checksum.as_str(),
        "description": migration.description.as_str(),
    }
}

/// Reads one applied migration from a `migrations` document; `None` when
/// `_id` or `checksum` is not a string.
pub fn applied_from_document(document: &Document) -> Option<AppliedMigration> {
    Some(AppliedMigration {
        id: document.get_str("_id").ok()?.to_owned(),
        checksum: document.get_str("checksum").ok()?.to_owned(),
    })
}

/// A failure while applying migrations against a server.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Plan(#[from] MigrationError),
    #[error("reading the {MIGRATIONS} collection failed: {0}")]
    ReadApplied(Box<mongodb::error::Error>),
    #[error("a {MIGRATIONS} document is malformed (expected string _id and checksum): {0}")]
    MalformedRecord(Box<Document>),
    #[error("migration {id}, step {step} ({command}) failed: {source}")]
    Step {
        id: String,
        step: usize,
        command: String,
        source: Box<mongodb::error::Error>,
    },
    #[error("migration {id} ran, but recording it failed: {source}")]
    Record {
        id: String,
        source: Box<mongodb::error::Error>,
    },
}

/// Reads the applied migrations from the server.
pub async fn applied(database: &Database) -> Result<Vec<AppliedMigration>, ApplyError> {
    let documents: Vec<Document> = database
        .collection::<Document>(MIGRATIONS)
        .find(doc! {})
        .projection(doc! { "_id": 1, "checksum": 1 })
        .await
        .map_err(|error| ApplyError::ReadApplied(Box::new(error)))?
        .try_collect()
        .await
        .map_err(|error| ApplyError::ReadApplied(Box::new(error)))?;
    documents
        .into_iter()
        .map(|document| {
            applied_from_document(&document)
                .ok_or_else(|| ApplyError::MalformedRecord(Box::new(document.clone())))
        })
        .collect()
}

/// Runs one migration's steps in order and records it. A step failing with
/// one of its `ignoreErrorCodes` counts as done.
pub async fn apply(database: &Database, migration: &Migration) -> Result<(), ApplyError> {
    for (index, step) in migration.steps.iter().enumerate() {
        match database.run_command(step.command.clone()).await {
            Ok(_) => {}
            Err(error) if error_code(&error).is_some_and(|code| step.ignore_error_codes.contains(&code)) => {
                info!(
                    migration = %migration.id,
                    step = index,
                    command = step.command_name(),
                    code = error_code(&error),
                    "step already done; continuing"
                );
            }
            Err(source) => {
                return Err(ApplyError::Step {
                    id: migration.id.clone(),
                    step: index,
                    command: step.command_name().to_owned(),
                    source: Box::new(source),
                });
            }
        }
    }
    // Upsert, so two `migrate` runs racing each other both succeed.
    database
        .collection::<Document>(MIGRATIONS)
        .replace_one(
            doc! { "_id": migration.id.as_str() },
            record_document(migration, Utc::now()),
        )
        .upsert(true)
        .write_concern(WriteConcern::majority())
        .await
        .map_err(|source| ApplyError::Record {
            id: migration.id.clone(),
            source: Box::new(source),
        })?;
    Ok(())
}

#[cfg(test)]
mod tests;
