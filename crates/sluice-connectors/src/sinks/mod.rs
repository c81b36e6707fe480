#[cfg(feature = "sink-falcon")]
pub mod falcon;
#[cfg(feature = "sink-file")]
pub mod file;
#[cfg(feature = "sink-blackhole")]
pub mod blackhole;
#[cfg(feature = "sink-prom-remote-write")]
pub mod prom_remote_write;
