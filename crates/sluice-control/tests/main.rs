//! The control plane's integration suite: the real router over real stores and real database services.

mod alerts;
mod audit;
mod backup_mode;
mod backups;
mod bad_input;
mod confinement;
mod instances;
mod monitoring;
mod notifications;
mod pipelines;
mod route_auth;
mod secrets;
mod support;
mod tickets;
