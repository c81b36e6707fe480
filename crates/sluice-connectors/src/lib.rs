//! Sources and sinks, one folder and one cargo feature each, and the pipeline file (`pipeline_file`) that
//! names them in an internally tagged enum and builds a runnable [`sluice_pipeline::Pipeline`].

pub mod component;
pub mod exec;
pub mod pipeline_file;
pub mod scope;
pub mod sinks;
pub mod sources;
