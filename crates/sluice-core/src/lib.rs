//! Sluice's shared vocabulary: the change model every source produces and the component contracts of the
//! data plane; Every other crate depends on this one, so it stays small and free of I/O:
//! domain enums that cross crate boundaries, [`Secret`], `${VAR}` interpolation and errors that name the
//! place (config path, API field) where the input was wrong.

pub mod calendar;
pub mod catalog;
pub mod change;
pub mod component;
pub mod config;
pub mod confine;
pub mod domain;
pub mod egress;
pub mod glob;
pub mod interpolate;
pub mod resume;
pub mod secret;
pub mod ticket;
pub mod wire;

pub use change::{ChangeEvent, Column, JsonText, Operation, Origin, Position, Row, Value};
pub use config::ConfigError;
pub use domain::{Engine, Environment, ExecMode, ProjectRole, Role, TicketKind, TlsMode};
pub use interpolate::{InterpolateError, interpolate};
pub use resume::ResumePosition;
pub use secret::Secret;
