//! Domain enums shared by the store, the engines and the API. Their serde names are the wire and storage
//! names, so renaming a variant is a migration.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        pub enum $name { $($(#[$vmeta])* #[serde(rename = $text)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant {
                        kind: stringify!($name),
                        value: s.to_string(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }
    };
}

/// A text that names no variant of a domain enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`, expected one of: {}", expected.join(", "))]
pub struct UnknownVariant {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static [&'static str],
}

string_enum! {
    /// A user's role. What each role may do is decided in one table in `sluice-control` (`auth::policy`).
    Role {
        /// Everything, including users and tokens.
        Admin => "admin",
        /// Operates databases: registers, edits and checks instances.
        Dba => "dba",
        /// Submits changes; reads the registry.
        Developer => "developer",
        /// Approves changes; reads the registry.
        Approver => "approver",
        /// Reads everything, including the audit log; changes nothing.
        Auditor => "auditor",
        /// Reads the registry.
        Viewer => "viewer",
    }
}

string_enum! {
    /// The database engine of a registered instance.
    Engine {
        Mysql => "mysql",
        Mariadb => "mariadb",
        Postgres => "postgres",
        Redis => "redis",
    }
}

string_enum! {
    /// The environment an instance belongs to; policies (review, approvals) are chosen by it.
    Environment {
        Prod => "prod",
        Staging => "staging",
        Test => "test",
        Dev => "dev",
    }
}

string_enum! {
    /// How Sluice uses TLS towards an instance.
    TlsMode {
        /// Plain TCP.
        Disable => "disable",
        /// TLS required; the certificate is not verified (encryption against passive listeners only).
        Require => "require",
        /// TLS required; the certificate chain and host name are verified against the web PKI roots.
        VerifyFull => "verify-full",
    }
}

impl Engine {
    /// The port the engine listens on unless told otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            Engine::Mysql | Engine::Mariadb => 3306,
            Engine::Postgres => 5432,
            Engine::Redis => 6379,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_the_choices() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), *r);
        }
        let err = "oracle".parse::<Engine>().unwrap_err();
        assert_eq!(err.to_string(), "unknown Engine `oracle`, expected one of: mysql, mariadb, postgres, redis");
    }
}

string_enum! {
    /// A member's role inside one project (global `admin` and `auditor` stay global).
    ProjectRole {
        /// Manages the project: members, instances, flows; approves as owner.
        Owner => "owner",
        /// Operates the project's databases: overrides review errors with a reason, runs tickets.
        Dba => "dba",
        /// Writes and submits tickets.
        Developer => "developer",
        /// Approves tickets at the stages that name approvers.
        Approver => "approver",
        /// Reads the project's tickets.
        Viewer => "viewer",
    }
}

string_enum! {
    /// What a change ticket does.
    TicketKind {
        Ddl => "ddl",
        Dml => "dml",
        /// A SELECT streamed to a file, masked.
        DataExport => "data_export",
        /// Redis commands from an allow-list.
        RedisCommand => "redis_command",
        /// A backup (or a point in time) restored into the target instance; the statements are the
        /// restore's spec as JSON (docs/backup.md).
        Restore => "restore",
    }
}

string_enum! {
    /// How a ticket is executed.
    ExecMode {
        /// Inside a transaction that is rolled back: affected rows, plans and findings; nothing changes.
        DryRun => "dry_run",
        Direct => "direct",
        /// The before-image of every changed row is kept and turned into a rollback ticket.
        Backup => "backup",
        /// UPDATE/DELETE in primary-key chunks, committed and checkpointed per chunk.
        Batched => "batched",
        /// A rollback ticket's script, in one transaction in which every statement must change exactly one
        /// row (the row as the undone ticket left it); a row changed since fails the run and nothing changes.
        Rollback => "rollback",
    }
}
