use mongodb::bson::{Bson, doc};

use super::*;

fn migration(id: &str, checksum: &str) -> Migration {
    Migration {
        id: id.to_owned(),
        description: String::new(),
        checksum: checksum.to_owned(),
        steps: Vec::new(),
    }
}

fn applied(id: &str, checksum: &str) -> AppliedMigration {
    AppliedMigration {
        id: id.to_owned(),
        checksum: checksum.to_owned(),
    }
}

fn ids(plan: &Plan) -> Vec<&str> {
    plan.pending.iter().map(|m| m.id.as_str()).collect()
}

#[test]
fn fresh_database_runs_everything_in_order() {
    let available = [migration("0001_a", "x"), migration("0002_b", "y")];
    let plan = plan(&available, &[]).unwrap();
    assert_eq!(ids(&plan), ["0001_a", "0002_b"]);
    assert!(plan.unknown_applied.is_empty());
}

#[test]
fn applied_migrations_are_skipped() {
    let available = [migration("0001_a", "x"), migration("0002_b", "y")];
    let plan = plan(&available, &[applied("0001_a", "x")]).unwrap();
    assert_eq!(ids(&plan), ["0002_b"]);
}

#[test]
fn everything_applied_plans_nothing() {
    let available = [migration("0001_a", "x")];
    let plan = plan(&available, &[applied("0001_a", "x")]).unwrap();
    assert!(plan.pending.is_empty());
}

#[test]
fn changed_file_after_apply_is_rejected() {
    let available = [migration("0001_a", "new")];
    let error = plan(&available, &[applied("0001_a", "old")]).unwrap_err();
    assert_eq!(
        error,
        MigrationError::ChangedAfterApply {
            id: "0001_a".to_owned(),
            recorded: "old".to_owned(),
            file: "new".to_owned(),
        }
    );
}

#[test]
fn pending_migration_before_applied_one_is_rejected() {
    let available = [migration("0001_a", "x"), migration("0002_b", "y")];
    let error = plan(&available, &[applied("0002_b", "y")]).unwrap_err();
    assert_eq!(
        error,
        MigrationError::OutOfOrder {
            pending: "0001_a".to_owned(),
            applied: "0002_b".to_owned(),
        }
    );
}

#[test]
fn records_from_a_newer_build_are_reported() {
    let available = [migration("0001_a", "x")];
    let plan = plan(&available, &[applied("0001_a", "x"), applied("0009_z", "q")]).unwrap();
    assert!(plan.pending.is_empty());
    assert_eq!(plan.unknown_applied, ["0009_z"]);
}

#[test]
fn file_parses_into_steps_with_checksum() {
    let text = br#"{
        "description": "indexes",
        "steps": [
            { "command": { "create": "users" }, "ignoreErrorCodes": [48] },
            { "command": { "createIndexes": "users", "indexes": [ { "key": { "userId": 1 }, "name": "userId_1", "unique": true } ] } }
        ]
    }"#;
    let migration = parse_migration("0001_indexes.json", text).unwrap();
    assert_eq!(migration.id, "0001_indexes");
    assert_eq!(migration.description, "indexes");
    assert_eq!(migration.checksum.len(), 64);
    assert_eq!(migration.steps[0].command, doc! { "create": "users" });
    assert_eq!(migration.steps[0].ignore_error_codes, [48]);
    assert_eq!(
        migration.steps[1].command,
        doc! {
            "createIndexes": "users",
            "indexes": [ { "key": { "userId": 1_i32 }, "name": "userId_1", "unique": true } ],
        }
    );
}

#[test]
fn checksum_is_sha256_of_the_bytes() {
    let text = br#"{"description":"d","steps":[{"command":{"collMod":"users"}}]}"#;
    let migration = parse_migration("0001_x.json", text).unwrap();
    // Python's hashlib.sha256 of the exact bytes above.
    assert_eq!(
        migration.checksum,
        "3a2b946a7b0ffddd32243ce875a7398b138846a6da83ee2b8928fbcf38c6c671"
    );
    assert_ne!(
        migration.checksum,
        parse_migration("0001_x.json", &[text.as_slice(), b" "].concat())
            .unwrap()
            .checksum
    );
}

#[test]
fn invalid_files_are_rejected_with_reason() {
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "indexes.json",
            br#"{"description":"d","steps":[]}"#,
            "the name must look like",
        ),
        (
            "0001_Indexes.json",
            br#"{"description":"d","steps":[]}"#,
            "the name must look like",
        ),
        (
            "0001_a.json",
            br#"{"description":"d","steps":[]}"#,
            "it has no steps",
        ),
        ("0001_a.json", b"not json", "not a migration document"),
        (
            "0001_a.json",
            br#"{"description":"d","steps":[{"command":{"drop":"users"}}]}"#,
            "command \"drop\" is not allowed",
        ),
        (
            "0001_a.json",
            br#"{"description":"d","steps":[{"command":{"create":"users"}}]}"#,
            "create must list 48",
        ),
        (
            "0001_a.json",
            br#"{"description":"d","steps":[{"command":{"collMod":7}}]}"#,
            "collMod must name a collection",
        ),
        (
            "0001_a.json",
            br#"{"description":"d","steps":[{"command":{"collMod":"users"},"retries":3}]}"#,
            "unknown field",
        ),
        (
            "0001_a.json",
            br#"{"description":"d","steps":[{"command":{"collMod":"users","x":{"$date":"nope"}}}]}"#,
            "invalid Extended JSON",
        ),
    ];
    for (name, text, expected) in cases {
        let error = parse_migration(name, text).unwrap_err().to_string();
        assert!(error.contains(expected), "{name}: {error}");
    }
}

#[test]
fn duplicate_ids_are_rejected() {
    let text: &[u8] = br#"{"description":"d","steps":[{"command":{"collMod":"users"}}]}"#;
    let error = parse_all([("0001_a.json", text), ("0001_a.json", text)]).unwrap_err();
    assert_eq!(error, MigrationError::DuplicateId("0001_a".to_owned()));
}

#[test]
fn record_document_has_id_time_and_checksum() {
    let mut migration = migration("0001_indexes", "abc");
    migration.description = "indexes".to_owned();
    let at: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    assert_eq!(
        record_document(&migration, at),
        doc! {
            "_id": "0001_indexes",
            "appliedAt": bson::DateTime::from_millis(at.timestamp_millis()),
            "checksum": "abc",
            "description": "indexes",
        }
    );
    assert_eq!(
        applied_from_document(&record_document(&migration, at)),
        Some(applied("0001_indexes", "abc"))
    );
}

#[test]
fn embedded_migrations_match_the_directory() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let from_dir = load_dir(&dir).unwrap();
    let embedded = embedded().unwrap();
    assert_eq!(
        embedded.iter().map(|m| &m.id).collect::<Vec<_>>(),
        from_dir.iter().map(|m| &m.id).collect::<Vec<_>>(),
        "every file in migrations/ must be listed in EMBEDDED"
    );
    assert_eq!(embedded, from_dir);
}

#[test]
fn shipped_indexes_match_the_queries() {
    let migrations = embedded().unwrap();
    let indexes = &migrations[0];
    assert_eq!(indexes.id, "0001_indexes");
    let bookings = indexes
        .steps
        .iter()
        .find(|step| step.command.get_str("createIndexes") == Ok("bookings"))
        .unwrap();
    let specs = bookings.command.get_array("indexes").unwrap();
    let keys: Vec<&Bson> = specs
        .iter()
        .map(|spec| spec.as_document().unwrap().get("key").unwrap())
        .collect();
    // The session and history queries sort on exactly this key after userId.
    let sort = crate::mongo::queries::recent_bookings_query("u", 5).sort.unwrap();
    let mut expected = doc! { "userId": 1_i32 };
    for (key, direction) in sort {
        expected.insert(key, direction);
    }
    assert!(keys.contains(&&Bson::Document(expected)), "{keys:?}");
}

#[test]
fn validators_use_moderate_level_and_error_action() {
    let migrations = embedded().unwrap();
    let validators = &migrations[1];
    assert_eq!(validators.id, "0002_validators");
    let collections: Vec<&str> = validators
        .steps
        .iter()
        .map(|step| step.command.get_str("collMod").unwrap())
        .collect();
    assert_eq!(
        collections,
        [
            "users",
            "bookings",
            "subscriptions",
            "notifications",
            "profile_details"
        ]
    );
    for step in &validators.steps {
        assert_eq!(step.command.get_str("validationLevel"), Ok("moderate"));
        assert_eq!(step.command.get_str("validationAction"), Ok("error"));
        let schema = step
            .command
            .get_document("validator")
            .unwrap()
            .get_document("$jsonSchema")
            .unwrap();
        assert_eq!(schema.get_str("bsonType"), Ok("object"));
    }
}

#[test]
fn every_shipped_step_keeps_the_command_name_first() {
    // Command documents are order-sensitive: the server reads the first key
    // as the command. This fails if JSON parsing ever stops keeping order.
    for migration in embedded().unwrap() {
        for step in &migration.steps {
            assert!(
                ALLOWED_COMMANDS.contains(&step.command_name()),
                "{}",
                migration.id
            );
        }
    }
}
