//! SQL review for MySQL/MariaDB and PostgreSQL: split a file into statements with positions, parse each
//! with sqlparser (a parse error is a finding; the rest of the file is still reviewed), run the rules, honour
//! `-- sluice:ignore rule-id` comments, and report findings as text, JSON or SARIF 2.1.0.
//!
//! Pure: no I/O, no async. The CLI (`sluice review`) and the server call [`review`].

mod code_words;
pub mod docs;
pub mod finding;
pub mod lineage;
pub mod policy;
mod recover;
pub mod redis;
pub mod report;
mod review;
pub mod rule;
pub mod rules;
pub mod schema;
pub mod split;
pub mod writes;

pub use finding::{Finding, Level};
pub use policy::{Policy, Settings};
pub use review::{Review, explain_candidates, review, review_with};
pub use rule::{Category, Rule, RuleMeta};

/// The SQL dialect a file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SqlDialect {
    /// MySQL and MariaDB.
    MySql,
    Postgres,
}

impl SqlDialect {
    /// `mysql`, `mariadb` or `postgres` (also `postgresql`, `pg`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mysql" | "mariadb" => Some(SqlDialect::MySql),
            "postgres" | "postgresql" | "pg" => Some(SqlDialect::Postgres),
            _ => None,
        }
    }
}
