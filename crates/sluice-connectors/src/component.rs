//! What every component's `config.rs` implements, and the one macro that lists them.
//!
//! A source or sink is its folder: a config struct (serde, `deny_unknown_fields`, rustdoc on each field)
//! that implements [`SourceSpec`] or [`SinkSpec`] — validate with key paths, say what it accepts and where it
//! connects, build — and one line in the `registry!` of `pipeline_file.rs`. Nothing else names it.

use futures_util::future::BoxFuture;
use sluice_core::ConfigError;
use sluice_pipeline::{Sink, Source};

use crate::scope::Scope;

/// What records a sink takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// Metrics only: the pipeline needs a `[shape]` section.
    Metrics,
    /// Row changes only: a `[shape]` section would leave it nothing.
    Changes,
    /// Whatever the pipeline produces.
    Any,
}

/// An outbound connection, for the egress check before the pipeline starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The key that names it, under the component's path (`url`).
    pub key: &'static str,
    pub host: String,
    pub port: u16,
}

/// What a sink is built with.
pub struct SinkContext<'a> {
    pub pipeline: &'a str,
    /// The sink's name in the file (`[sinks.NAME]`).
    pub name: &'a str,
    pub scope: &'a Scope,
}

/// A sink's configuration (`[sinks.NAME]` with its `type`).
pub trait SinkSpec: Send + Sync + std::fmt::Debug {
    /// Every problem, each under `at` (`sinks.NAME`) plus its key; connects nowhere, opens nothing.
    fn validate(&self, at: &str, scope: &Scope, errors: &mut Vec<ConfigError>);

    fn accepts(&self) -> Accepts;

    /// Where it connects (checked against the egress policy before the pipeline starts).
    fn endpoints(&self) -> Vec<Endpoint> {
        Vec::new()
    }

    /// The registered instance its connection names (`url = "instance:NAME"`), for the control plane to
    /// resolve into [`set_connection`](Self::set_connection).
    fn instance(&self) -> Option<&str> {
        None
    }

    /// Gives the sink the typed connection its `instance:NAME` resolved to.
    fn set_connection(&mut self, spec: sluice_engines::ConnectSpec) {
        let _ = spec;
    }

    /// Gives the sink the source's connection, for what it must know of the source (a database sink reads
    /// the source's foreign keys whose actions never reach the binlog).
    fn set_source(&mut self, spec: sluice_engines::ConnectSpec) {
        let _ = spec;
    }

    /// Builds the sink from a validated configuration; errors are about opening things (a file, a client).
    fn build<'a>(self: Box<Self>, cx: &'a SinkContext<'a>) -> BoxFuture<'a, Result<Box<dyn Sink>, String>>;
}

/// A source's configuration (`[source]` with its `type`).
pub trait SourceSpec: Send + Sync + std::fmt::Debug {
    /// The connection string as written: a URL, or `instance:NAME` for the control plane to resolve.
    fn url(&self) -> &str;

    /// Gives the source the typed connection its `instance:NAME` resolved to (password and TLS settings from
    /// the registry, never a URL).
    fn set_connection(&mut self, spec: sluice_engines::ConnectSpec);

    /// Every problem, each under `at` (`source`) plus its key; connects nowhere.
    fn validate(&self, at: &str, pipeline: &str, errors: &mut Vec<ConfigError>);

    /// Where it connects, when that can be told before connecting.
    fn endpoint(&self) -> Option<Endpoint>;

    /// Its typed connection, when it has one a sink may also use to read the source's schema.
    fn connect_spec(&self) -> Option<sluice_engines::ConnectSpec> {
        None
    }

    /// Builds the source. `also_capture` is a table a transform reads from the stream whatever the
    /// source's own table filter says (the shaping config table).
    fn build(self: Box<Self>, pipeline: &str, also_capture: Option<(String, String)>) -> Result<Box<dyn Source>, String>;
}

/// An internally tagged enum of components, read section by section so that every problem keeps its path
/// (see `sluice_core::config`). Each line: `Variant("type", ConfigType)`, with the cargo feature that
/// switches it.
macro_rules! registry {
    ($(#[$doc:meta])* $vis:vis enum $name:ident: $spec:ident { $( #[cfg($cfg:meta)] $variant:ident($tag:literal, $ty:ty), )* }) => {
        $(#[$doc])*
        #[derive(Debug)]
        $vis enum $name {
            $( #[cfg($cfg)] $variant(Box<$ty>), )*
        }

        impl $name {
            /// Every `type` this build knows.
            #[allow(clippy::vec_init_then_push)]
            pub fn types() -> Vec<&'static str> {
                #[allow(unused_mut)]
                let mut types = Vec::new();
                $( #[cfg($cfg)] types.push($tag); )*
                types
            }

            /// Reads the section at `path`, every problem into `errors`.
            pub fn take(value: toml::Value, path: &str, errors: &mut Vec<sluice_core::ConfigError>) -> Option<Self> {
                let (tag, rest) = sluice_core::config::split_tag(value, path, &Self::types(), errors)?;
                match tag.as_str() {
                    $( #[cfg($cfg)] $tag => sluice_core::config::take::<$ty>(rest, path, errors).map(|c| $name::$variant(Box::new(c))), )*
                    _ => None,
                }
            }

            pub fn spec(&self) -> &dyn $spec {
                match self {
                    $( #[cfg($cfg)] $name::$variant(c) => c.as_ref(), )*
                }
            }

            pub fn spec_mut(&mut self) -> &mut dyn $spec {
                match self {
                    $( #[cfg($cfg)] $name::$variant(c) => c.as_mut(), )*
                }
            }

            pub fn into_spec(self) -> Box<dyn $spec> {
                match self {
                    $( #[cfg($cfg)] $name::$variant(c) => c, )*
                }
            }
        }
    };
}

pub(crate) use registry;
