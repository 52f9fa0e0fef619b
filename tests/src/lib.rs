pub mod kafka_broker;
pub mod processes;
pub mod redis_server;
