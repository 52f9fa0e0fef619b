pub mod kafka_broker;
pub mod redis_server;
