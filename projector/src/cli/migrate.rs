//! `migrate`: apply the pending MongoDB migrations, or print them.
//!
//! Reads `MONGODB_URI` and `MONGODB_DATABASE`. Migrations come from the
//! binary (the files of `migrations/` at build time) unless `--dir` names a
//! directory. Each applied migration is recorded in the `migrations`
//! collection; see `sessionfold_common::mongo::migrations` for the rules.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use mongodb::bson::Bson;
use sessionfold_common::config::Env;
use sessionfold_common::mongo::MongoConfig;
use sessionfold_common::mongo::config::redact_uri;
use sessionfold_common::mongo::migrations::{self, Migration, Plan};
use tracing::{info, warn};

/// Applies pending MongoDB migrations.
#[derive(clap::Args)]
pub struct MigrateArgs {
    /// Print the commands of the pending migrations without running them.
    #[arg(long)]
    pub dry_run: bool,
    /// Read migrations from this directory instead of those built into the binary.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub async fn execute(args: MigrateArgs) -> anyhow::Result<()> {
    let mut env = Env::from_process();
    let config = MongoConfig::from_env(&mut env);
    if config.is_none() {
        env.fail(
            "MONGODB_URI",
            "",
            "a MongoDB connection string; migrate needs one, e.g. mongodb://127.0.0.1:27017/?replicaSet=rs0",
        );
    }
    env.finish()?;
    let config = config.expect("checked above");

    let available = match &args.dir {
        Some(dir) => migrations::load_dir(dir)?,
        None => migrations::embedded()?,
    };
    let database = config
        .connect()
        .await
        .with_context(|| format!("cannot connect to MongoDB at {}", redact_uri(&config.uri)))?;
    let applied = migrations::applied(&database).await?;
    let plan = migrations::plan(&available, &applied)?;
    for id in &plan.unknown_applied {
        warn!(migration = %id, "applied migration has no file in this build; a newer build applied it");
    }

    if args.dry_run || plan.pending.is_empty() {
        print!("{}", describe_plan(&plan, &config.database, available.len()));
        return Ok(());
    }
    for migration in &plan.pending {
        info!(migration = %migration.id, steps = migration.steps.len(), "applying migration");
        migrations::apply(&database, migration).await?;
        println!("applied {}: {}", migration.id, migration.description);
    }
    println!(
        "database {}: {} migration(s) applied, all {} up to date",
        config.database,
        plan.pending.len(),
        available.len()
    );
    Ok(())
}

/// Describes a plan as `--dry-run` prints it: each pending migration and its commands as
/// `db.runCommand(...)` lines in relaxed Extended JSON, ready for mongosh.
pub fn describe_plan(plan: &Plan, database: &str, available: usize) -> String {
    let mut out = String::new();
    if plan.pending.is_empty() {
        let _ = writeln!(
            out,
            "database {database}: all {available} migration(s) are applied; nothing to do"
        );
        return out;
    }
    let _ = writeln!(
        out,
        "database {database}: {} pending migration(s); nothing was run",
        plan.pending.len()
    );
    for migration in &plan.pending {
        describe_migration(&mut out, migration);
    }
    out
}

fn describe_migration(out: &mut String, migration: &Migration) {
    let _ = writeln!(out, "\n// {}: {}", migration.id, migration.description);
    for step in &migration.steps {
        let json = Bson::Document(step.command.clone()).into_relaxed_extjson();
        let _ = write!(out, "db.runCommand({json})");
        if step.ignore_error_codes.is_empty() {
            let _ = writeln!(out);
        } else {
            let codes: Vec<String> = step.ignore_error_codes.iter().map(i32::to_string).collect();
            let _ = writeln!(out, "  // error codes {} mean already done", codes.join(", "));
        }
    }
}

#[cfg(test)]
mod tests {
    use sessionfold_common::mongo::migrations::parse_migration;

    use super::*;

    fn migration() -> Migration {
        parse_migration(
            "0001_indexes.json",
            br#"{"description": "indexes", "steps": [
                {"command": {"create": "users"}, "ignoreErrorCodes": [48]},
                {"command": {"createIndexes": "users", "indexes": [{"key": {"userId": 1}, "name": "userId_1", "unique": true}]}}
            ]}"#,
        )
        .unwrap()
    }

    #[test]
    fn dry_run_prints_each_command() {
        let plan = Plan {
            pending: vec![migration()],
            unknown_applied: Vec::new(),
        };
        assert_eq!(
            describe_plan(&plan, "sessionfold", 1),
            "database sessionfold: 1 pending migration(s); nothing was run\n\
             \n\
             // 0001_indexes: indexes\n\
             db.runCommand({\"create\":\"users\"})  // error codes 48 mean already done\n\
             db.runCommand({\"createIndexes\":\"users\",\"indexes\":[{\"key\":{\"userId\":1},\"name\":\"userId_1\",\"unique\":true}]})\n"
        );
    }

    #[test]
    fn nothing_pending_says_so() {
        let plan = Plan {
            pending: Vec::new(),
            unknown_applied: Vec::new(),
        };
        assert_eq!(
            describe_plan(&plan, "sessionfold", 3),
            "database sessionfold: all 3 migration(s) are applied; nothing to do\n"
        );
    }
}
