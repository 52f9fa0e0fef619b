//! `RedisCheckpoints` (the change stream's resume token and rebuild marker)
//! against a local `redis-server`, including an outage.

use std::time::{Duration, Instant};

use mongodb::bson::{self, Binary, Bson, doc, spec::BinarySubtype};
use mongodb::change_stream::event::ResumeToken;
use redis::Commands;
use sessionfold_common::store::RedisConfig;
use sessionfold_projector::mongo_stream::checkpoint::{
    CheckpointError, CheckpointStore, REBUILD_REQUIRED_KEY, RedisCheckpoints, resume_key,
};
use sessionfold_tests::redis_server::RedisServer;

fn token(data: &str) -> ResumeToken {
    let value = Bson::Document(doc! {
        "_data": data,
        "_typeBits": Binary { subtype: BinarySubtype::Generic, bytes: vec![0x81] },
    });
    bson::from_bson(value).unwrap()
}

#[tokio::test]
async fn token_is_saved_loaded_and_discarded() {
    let server = RedisServer::start_local();
    let checkpoints = RedisCheckpoints::new(RedisConfig::for_url(&server.url()).unwrap());

    assert_eq!(checkpoints.load("mongo-test").await.unwrap(), None);
    checkpoints.save("mongo-test", &token("8201")).await.unwrap();
    checkpoints.save("mongo-test", &token("8202")).await.unwrap();
    assert_eq!(checkpoints.load("mongo-test").await.unwrap(), Some(token("8202")));
    assert_eq!(checkpoints.load("mongo-other").await.unwrap(), None);

    let mut client = server.client();
    let stored: Vec<u8> = client.get(resume_key("mongo-test")).unwrap();
    assert!(!stored.is_empty());

    checkpoints.discard("mongo-test").await.unwrap();
    assert_eq!(checkpoints.load("mongo-test").await.unwrap(), None);
}

#[tokio::test]
async fn rebuild_marker_is_json_with_reason() {
    let server = RedisServer::start_local();
    let checkpoints = RedisCheckpoints::new(RedisConfig::for_url(&server.url()).unwrap());
    let at = "2026-03-01T12:00:00Z".parse().unwrap();
    checkpoints
        .mark_rebuild_required("mongo-test", "history lost", at)
        .await
        .unwrap();
    let mut client = server.client();
    let marker: String = client.get(REBUILD_REQUIRED_KEY).unwrap();
    let marker: serde_json::Value = serde_json::from_str(&marker).unwrap();
    assert_eq!(marker["reason"], "history lost");
    assert_eq!(marker["stream"], "mongo-test");
    assert_eq!(marker["at"], "2026-03-01T12:00:00.000Z");
}

#[tokio::test]
async fn corrupt_stored_token_is_reported() {
    let server = RedisServer::start_local();
    let checkpoints = RedisCheckpoints::new(RedisConfig::for_url(&server.url()).unwrap());
    let mut client = server.client();
    let _: () = client.set(resume_key("mongo-test"), "not bson").unwrap();
    let error = checkpoints.load("mongo-test").await.unwrap_err();
    assert!(matches!(error, CheckpointError::Corrupt(_)), "{error}");
}

#[tokio::test]
async fn outage_fails_fast_and_recovers() {
    let mut server = RedisServer::start_local();
    let checkpoints = RedisCheckpoints::new(RedisConfig::for_url(&server.url()).unwrap());
    checkpoints.save("mongo-test", &token("8201")).await.unwrap();

    server.stop();
    let started = Instant::now();
    let error = checkpoints.save("mongo-test", &token("8202")).await.unwrap_err();
    assert!(matches!(error, CheckpointError::Unavailable(_)), "{error}");
    assert!(error.to_string().contains("127.0.0.1"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );

    server.restart();
    checkpoints.save("mongo-test", &token("8203")).await.unwrap();
    assert_eq!(checkpoints.load("mongo-test").await.unwrap(), Some(token("8203")));
}
