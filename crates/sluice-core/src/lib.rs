//! Sluice's shared vocabulary. Every other crate depends on this one, so it stays small and free of I/O:
//! domain enums that cross crate boundaries, [`Secret`], `${VAR}` interpolation and errors that name the
//! place (config path, API field) where the input was wrong.

pub mod domain;
pub mod interpolate;
pub mod secret;

pub use domain::{Engine, Environment, Role, TlsMode};
pub use interpolate::{InterpolateError, interpolate};
pub use secret::Secret;
