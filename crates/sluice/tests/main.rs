//! The `sluice` binary's suite: the control plane's CLI and server (`cli`) and pipelines run with
//! `sluice run` against real MariaDB (`cdc`).

mod cdc;
mod cli;
mod file_drop;
mod lanes;
mod outage;
mod support;
mod sync;
