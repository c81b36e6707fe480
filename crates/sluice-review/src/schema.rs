//! The live schema the schema-aware rules read: the catalog types of `sluice-core`, collected by
//! `sluice-engines` (which does not depend on this crate).

pub use sluice_core::catalog::{SchemaInfo, TableInfo};
