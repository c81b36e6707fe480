//! Sluice's embedded time-series store ([`store`]), its chunk encodings ([`chunk`]: [`gorilla`], [`decimal`]) and PromQL over it
//! ([`promql`], [`query`]). See docs/monitoring.md.

pub mod chunk;
pub mod decimal;
pub mod forecast;
pub mod gorilla;
mod index;
pub mod labels;
pub mod promql;
pub mod query;
pub mod store;

pub use labels::Labels;
pub use store::{Sample, SeriesData, Tsdb, TsdbConfig};
