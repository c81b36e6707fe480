#[cfg(feature = "sink-falcon")]
pub mod falcon;
#[cfg(feature = "sink-file")]
pub mod file;
