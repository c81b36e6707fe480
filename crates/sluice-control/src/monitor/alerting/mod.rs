//! Alerting: rules ([`rules`]), the lifecycle ([`lifecycle`]), and the evaluation loop ([`engine`]).
//! Alerts are delivered through the notification outbox (events `alert.firing`, `alert.resolved`,
//! `alert.evaluation_failed`) to whatever channels subscribe to them.

pub mod engine;
pub mod intake;
pub mod lifecycle;
pub mod rules;
pub mod silences;
