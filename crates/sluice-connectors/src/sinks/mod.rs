#[cfg(feature = "sink-amqp")]
pub mod amqp;
#[cfg(feature = "sink-blackhole")]
pub mod blackhole;
#[cfg(feature = "sink-database")]
pub mod database;
#[cfg(feature = "sink-falcon")]
pub mod falcon;
#[cfg(feature = "sink-file")]
pub mod file;
#[cfg(feature = "sink-file-drop")]
pub mod file_drop;
#[cfg(feature = "sink-http")]
pub mod http;
#[cfg(any(feature = "sink-falcon", feature = "sink-prom-remote-write", feature = "sink-http"))]
pub mod http_client;
#[cfg(any(
    feature = "sink-nats",
    feature = "sink-redis-streams",
    feature = "sink-amqp",
    feature = "sink-mqtt",
    feature = "sink-http",
    feature = "sink-file-drop"
))]
pub mod message;
#[cfg(feature = "sink-mqtt")]
pub mod mqtt;
#[cfg(feature = "sink-nats")]
pub mod nats;
#[cfg(feature = "sink-prom-remote-write")]
pub mod prom_remote_write;
#[cfg(feature = "sink-redis-streams")]
pub mod redis_streams;
