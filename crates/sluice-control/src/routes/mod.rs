//! One module per API area; each exposes `router()` with its handlers and their OpenAPI descriptions.

pub mod alerts;
pub mod audit;
pub mod backups;
pub mod channels;
pub mod flows;
pub mod instances;
pub mod metrics_api;
pub mod pipelines;
pub mod projects;
pub mod review;
pub mod system;
pub mod tickets;
pub mod users;
pub mod windows;
