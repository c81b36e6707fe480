//! Rules over the whole file or over statement text (for statements the parser does not read).

macro_rules! file_rule {
    ($ty:ident, $meta:expr, |$stmts:ident, $dialect:ident| $body:block) => {
        file_rule!($ty, $meta, |$stmts, $dialect, _settings| $body);
    };
    ($ty:ident, $meta:expr, |$stmts:ident, $dialect:ident, $settings:ident| $body:block) => {
        pub struct $ty;

        static META: $crate::rule::RuleMeta = $meta;

        impl $crate::rule::FileRule for $ty {
            fn meta(&self) -> &'static $crate::rule::RuleMeta {
                &META
            }

            fn check(&self, $stmts: &[$crate::rule::StmtView<'_>], $dialect: $crate::SqlDialect, $settings: &$crate::policy::Settings) -> Vec<(usize, $crate::rule::At, Option<String>)> $body
        }
    };
}

pub mod concurrently_in_transaction;
pub mod foreign_key_needs_index;
pub mod max_indexes_per_table;
pub mod merge_alter_table;
pub mod no_alter_domain_add_constraint;
pub mod no_cluster;
pub mod no_create_event;
pub mod no_duplicate_index;
pub mod no_lock_tables;
pub mod no_mixed_ddl_dml;
pub mod no_nested_transaction;
pub mod no_optimize_table;
pub mod no_redundant_index;
pub mod no_reindex_without_concurrently;
pub mod no_stored_procedures;
pub mod no_triggers;
pub mod no_uncommitted_transaction;
pub mod no_validate_in_same_transaction;
pub mod prefer_robust_stmts;
pub mod require_innodb;
pub mod require_lock_timeout;
pub mod require_primary_key;
pub mod require_statement_timeout;
pub mod schema_table_exists;
