//! One rule per file, listed once in `registry!` below; ids are kebab-case and unique (tested).

use crate::rule::Rule;

/// Declares a rule: a unit struct, its static metadata, and its check.
macro_rules! rule {
    ($ty:ident, $meta:expr, |$ctx:ident| $body:block, unparsed: |$u:ident| $ubody:block) => {
        pub struct $ty;

        static META: $crate::rule::RuleMeta = $meta;

        impl $crate::rule::Rule for $ty {
            fn meta(&self) -> &'static $crate::rule::RuleMeta {
                &META
            }

            fn check(&self, $ctx: &$crate::rule::Ctx<'_>) -> Vec<($crate::rule::At, Option<String>)> $body

            fn check_unparsed(&self, $u: &$crate::rule::UnparsedCtx<'_>) -> Vec<($crate::rule::At, Option<String>)> $ubody
        }
    };
    // Most rules have nothing to say about statements without a grammar.
    ($ty:ident, $meta:expr, |$ctx:ident| $body:block) => {
        rule!($ty, $meta, |$ctx| $body, unparsed: |_u| { Vec::new() });
    };
}

pub(crate) const BOTH: &[crate::SqlDialect] = &[crate::SqlDialect::MySql, crate::SqlDialect::Postgres];
pub(crate) const MYSQL: &[crate::SqlDialect] = &[crate::SqlDialect::MySql];
pub(crate) const POSTGRES: &[crate::SqlDialect] = &[crate::SqlDialect::Postgres];

pub(crate) mod columns;
pub mod file;
pub(crate) mod indexes;

/// The one list of rules: emits the statement rules' modules, `all()`, `file_rules()` and `RuleId`.
macro_rules! registry {
    (statement: [$($m:ident :: $t:ident),* $(,)?] file: [$($fm:ident :: $ft:ident),* $(,)?]) => {
        $(mod $m;)*

        /// Every rule by name: one variant per statement or file rule.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum RuleId {
            $($t,)*
            $($ft,)*
        }

        impl RuleId {
            /// Every rule, statement rules first, in registry order.
            pub const ALL: &[RuleId] = &[$(RuleId::$t,)* $(RuleId::$ft,)*];

            pub fn meta(self) -> &'static crate::rule::RuleMeta {
                use crate::rule::{FileRule as _, Rule as _};
                match self {
                    $(RuleId::$t => $m::$t.meta(),)*
                    $(RuleId::$ft => file::$fm::$ft.meta(),)*
                }
            }
        }

        /// Every statement rule, in id order.
        pub fn all() -> Vec<&'static dyn Rule> {
            let mut v: Vec<&'static dyn Rule> = vec![$(&$m::$t,)*];
            v.sort_by_key(|r| r.meta().id);
            v
        }

        /// Every file-level rule, in id order.
        pub fn file_rules() -> Vec<&'static dyn crate::rule::FileRule> {
            let mut v: Vec<&'static dyn crate::rule::FileRule> = vec![$(&file::$fm::$ft,)*];
            v.sort_by_key(|r| r.meta().id);
            v
        }
    };
}

registry! {
    statement: [
        add_check_not_valid::AddCheckNotValid,
        add_foreign_key_not_valid::AddForeignKeyNotValid,
        add_unique_constraint_using_index::AddUniqueConstraintUsingIndex,
        alter_requires_online_algorithm::AlterRequiresOnlineAlgorithm,
        always_true_where::AlwaysTrueWhere,
        auto_increment_unsigned_bigint::AutoIncrementUnsignedBigint,
        charset_allow_list::CharsetAllowList,
        collation_allow_list::CollationAllowList,
        column_name_pattern::ColumnNamePattern,
        create_index_concurrently::CreateIndexConcurrently,
        drop_index_concurrently::DropIndexConcurrently,
        foreign_key_name_pattern::ForeignKeyNamePattern,
        index_name_pattern::IndexNamePattern,
        insert_requires_column_list::InsertRequiresColumnList,
        insert_select_star::InsertSelectStar,
        max_columns_per_index::MaxColumnsPerIndex,
        max_columns_per_table::MaxColumnsPerTable,
        max_in_list::MaxInList,
        max_statement_size::MaxStatementSize,
        no_alter_column_type::NoAlterColumnType,
        no_auto_increment_initial_value::NoAutoIncrementInitialValue,
        no_blob_text_columns::NoBlobTextColumns,
        no_change_primary_key::NoChangePrimaryKey,
        no_create_table_as_select::NoCreateTableAsSelect,
        no_drop_column::NoDropColumn,
        no_drop_database::NoDropDatabase,
        no_drop_table::NoDropTable,
        no_enum_columns::NoEnumColumns,
        no_float_columns::NoFloatColumns,
        no_float_for_money::NoFloatForMoney,
        no_foreign_keys::NoForeignKeys,
        no_grant_all::NoGrantAll,
        no_insert_ignore::NoInsertIgnore,
        no_int_display_width::NoIntDisplayWidth,
        no_leading_wildcard_like::NoLeadingWildcardLike,
        no_limit_without_order_by::NoLimitWithoutOrderBy,
        no_money_type::NoMoneyType,
        no_multi_table_dml::NoMultiTableDml,
        no_on_delete_cascade::NoOnDeleteCascade,
        no_order_by_rand::NoOrderByRand,
        no_rename_column::NoRenameColumn,
        no_rename_table::NoRenameTable,
        no_replace_into::NoReplaceInto,
        no_reserved_word_names::NoReservedWordNames,
        no_select_star::NoSelectStar,
        no_set_global::NoSetGlobal,
        no_subquery_in_dml::NoSubqueryInDml,
        no_truncate::NoTruncate,
        no_vacuum_full::NoVacuumFull,
        no_volatile_default::NoVolatileDefault,
        no_zerofill::NoZerofill,
        not_null_requires_default::NotNullRequiresDefault,
        prefer_bigint_primary_key::PreferBigintPrimaryKey,
        prefer_identity_over_serial::PreferIdentityOverSerial,
        prefer_jsonb_over_json::PreferJsonbOverJson,
        prefer_text_over_char::PreferTextOverChar,
        prefer_text_over_varchar::PreferTextOverVarchar,
        prefer_timestamptz::PreferTimestamptz,
        require_column_comment::RequireColumnComment,
        require_index_name::RequireIndexName,
        require_table_comment::RequireTableComment,
        require_where_for_delete::RequireWhereForDelete,
        require_where_for_update::RequireWhereForUpdate,
        schema_affected_rows::SchemaAffectedRows,
        schema_alter_large_table::SchemaAlterLargeTable,
        schema_column_exists::SchemaColumnExists,
        schema_column_type_narrowing::SchemaColumnTypeNarrowing,
        schema_dropped_column_referenced::SchemaDroppedColumnReferenced,
        schema_index_covers_predicate::SchemaIndexCoversPredicate,
        set_not_null_on_existing_column::SetNotNullOnExistingColumn,
        table_name_pattern::TableNamePattern,
        unique_key_name_pattern::UniqueKeyNamePattern,
        no_drop_not_null::NoDropNotNull,
        no_duplicate_columns::NoDuplicateColumns,
        identifier_too_long::IdentifierTooLong,
        require_concurrent_partition_detach::RequireConcurrentPartitionDetach,
        require_enum_value_ordering::RequireEnumValueOrdering,
        no_create_domain_constraint::NoCreateDomainConstraint,
        prefer_bigint::PreferBigint,
        max_char_length::MaxCharLength,
        max_varchar_length::MaxVarcharLength,
        max_on_update_timestamp_columns::MaxOnUpdateTimestampColumns,
        no_change_column_type::NoChangeColumnType,
        no_change_column_order::NoChangeColumnOrder,
        no_duplicate_index_columns::NoDuplicateIndexColumns,
        integer_primary_key::IntegerPrimaryKey,
        auto_increment_column_name::AutoIncrementColumnName,
        no_commit::NoCommit,
        no_order_by_in_dml::NoOrderByInDml,
        max_insert_rows::MaxInsertRows,
        no_equal_null::NoEqualNull,
        require_where_for_select::RequireWhereForSelect,
        function_deny_list::FunctionDenyList,
        invalid_default_for_type::InvalidDefaultForType,
        text_blob_not_null::TextBlobNotNull,
        column_required::ColumnRequired,
        no_nullable_columns::NoNullableColumns,
        column_require_default::ColumnRequireDefault,
        no_create_view::NoCreateView,
        no_partitioned_tables::NoPartitionedTables,
        require_max_execution_time::RequireMaxExecutionTime,
        require_table_schema::RequireTableSchema,
    ]
    file: [
        foreign_key_needs_index::ForeignKeyNeedsIndex,
        max_indexes_per_table::MaxIndexesPerTable,
        no_redundant_index::NoRedundantIndex,
        concurrently_in_transaction::ConcurrentlyInTransaction,
        merge_alter_table::MergeAlterTable,
        no_cluster::NoCluster,
        no_lock_tables::NoLockTables,
        no_optimize_table::NoOptimizeTable,
        no_reindex_without_concurrently::NoReindexWithoutConcurrently,
        no_stored_procedures::NoStoredProcedures,
        no_triggers::NoTriggers,
        require_lock_timeout::RequireLockTimeout,
        require_innodb::RequireInnodb,
        no_duplicate_index::NoDuplicateIndex,
        require_primary_key::RequirePrimaryKey,
        schema_table_exists::SchemaTableExists,
        no_uncommitted_transaction::NoUncommittedTransaction,
        no_nested_transaction::NoNestedTransaction,
        require_statement_timeout::RequireStatementTimeout,
        no_mixed_ddl_dml::NoMixedDdlDml,
        no_create_event::NoCreateEvent,
        no_alter_domain_add_constraint::NoAlterDomainAddConstraint,
        prefer_robust_stmts::PreferRobustStmts,
        no_validate_in_same_transaction::NoValidateInSameTransaction,
    ]
}

/// The metadata of every rule (statement and file rules), in id order.
pub fn all_meta() -> Vec<&'static crate::rule::RuleMeta> {
    let mut v: Vec<_> = RuleId::ALL.iter().map(|r| r.meta()).collect();
    v.sort_by_key(|m| m.id);
    v
}

/// The last part of a qualified name, unquoted.
pub(crate) fn last_ident(name: &sqlparser::ast::ObjectName) -> String {
    name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.clone()).unwrap_or_else(|| name.to_string())
}

/// Walks every expression of a statement (through sqlparser's visitor-free Display is not enough, so this
/// collects the WHERE-like expressions rules look at).
pub(crate) fn where_of(stmt: &sqlparser::ast::Statement) -> Option<&sqlparser::ast::Expr> {
    use sqlparser::ast::Statement;
    match stmt {
        Statement::Update(u) => u.selection.as_ref(),
        Statement::Delete(d) => d.selection.as_ref(),
        Statement::Query(q) => match q.body.as_ref() {
            sqlparser::ast::SetExpr::Select(s) => s.selection.as_ref(),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    /// The live-database facts the schema-aware rules' examples are written against.
    fn fixture_settings() -> crate::Settings {
        let mut schema = crate::schema::SchemaInfo::default();
        let cols = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        schema.tables.insert(
            "orders".into(),
            crate::schema::TableInfo {
                columns: cols(&["id", "status", "user_id", "note"]),
                indexes: vec![cols(&["id"])],
                rows: 5_000_000,
                bytes: 2 << 30,
                column_types: [("status".to_string(), "varchar(32)".to_string())].into_iter().collect(),
                referenced_by: [("user_id".to_string(), vec!["view order_owners".to_string()])].into_iter().collect(),
            },
        );
        schema.tables.insert(
            "small_table".into(),
            crate::schema::TableInfo { columns: cols(&["id"]), indexes: vec![cols(&["id"])], rows: 10, bytes: 16384, ..Default::default() },
        );
        // The bad example of schema-affected-rows is statement 0 of its file; the good one touches one row.
        schema.estimates.insert(0, 2_000_000);
        crate::Settings { schema: Some(schema), ..Default::default() }
    }

    /// Every rule's own bad example, put where no server reads it as code — in a comment, in a string
    /// literal and as a quoted name — fires nothing: rules read code, never the inside of those.
    #[test]
    fn no_rule_fires_on_its_bad_example_inside_a_comment_a_string_or_a_quoted_name() {
        for m in super::all_meta() {
            // The size and name-length limits are about the text itself.
            if matches!(m.id, "max-statement-size" | "identifier-too-long") {
                continue;
            }
            for d in m.engines {
                let settings = if m.id.starts_with("schema-") { fixture_settings() } else { crate::Settings::for_examples(m) };
                let flat = m.bad.replace('\n', " ");
                let quote = if *d == crate::SqlDialect::MySql { '`' } else { '"' };
                let wrapped = [
                    format!("SELECT 1 /* {} */ AS x;", m.bad.replace("*/", "* /")),
                    format!("SELECT 1 AS x; -- {flat}"),
                    format!("SELECT '{}' AS x;", flat.replace('\'', "''").replace('\\', "\\\\")),
                    format!("SELECT 1 AS {quote}{}{quote};", flat.replace(quote, &format!("{quote}{quote}"))),
                ];
                for sql in wrapped {
                    let r = crate::review_with(&sql, *d, &settings);
                    assert!(!r.findings.iter().any(|f| f.rule == m.id), "{} fires on code that is not there ({d:?}): {sql}", m.id);
                }
            }
        }
    }

    /// The rules beyond column types that a migration can trip with ALTER TABLE (or a later statement on a
    /// table of the same file) hold those forms to what they hold CREATE TABLE / CREATE INDEX to. The column
    /// rules have their own table (`columns::tests`).
    #[test]
    fn rules_apply_to_the_alter_forms() {
        use crate::SqlDialect::{MySql, Postgres};
        let wide: Vec<String> = (1..=50).map(|i| format!("c{i} INT")).collect();
        let wide = format!("CREATE TABLE w (id BIGINT PRIMARY KEY, {});\nALTER TABLE w ADD COLUMN c51 INT;", wide.join(", "));
        let many_indexes = "CREATE TABLE m (id BIGINT PRIMARY KEY, a INT, b INT, c INT, d INT, e INT, f INT);\n\
             ALTER TABLE m ADD INDEX idx_m_a (a), ADD INDEX idx_m_b (b), ADD INDEX idx_m_c (c);\n\
             ALTER TABLE m ADD INDEX idx_m_d (d), ADD INDEX idx_m_e (e), ADD INDEX idx_m_f (f);";
        let cases: Vec<(&str, crate::SqlDialect, String)> = vec![
            ("column-name-pattern", MySql, "ALTER TABLE t ADD COLUMN CreatedAt TIMESTAMP;".into()),
            ("column-name-pattern", Postgres, "ALTER TABLE t RENAME COLUMN a TO \"CreatedAt\";".into()),
            ("index-name-pattern", MySql, "ALTER TABLE orders ADD INDEX account (account_id);".into()),
            ("unique-key-name-pattern", MySql, "ALTER TABLE users ADD UNIQUE KEY email (email);".into()),
            ("unique-key-name-pattern", Postgres, "ALTER TABLE users ADD CONSTRAINT email UNIQUE (email);".into()),
            ("require-index-name", MySql, "ALTER TABLE orders ADD INDEX (user_id);".into()),
            ("no-foreign-keys", MySql, "ALTER TABLE orders ADD CONSTRAINT fk_orders_users FOREIGN KEY (user_id) REFERENCES users (id);".into()),
            (
                "foreign-key-needs-index",
                Postgres,
                "ALTER TABLE orders ADD CONSTRAINT fk_orders_users FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;".into(),
            ),
            ("max-columns-per-index", MySql, "ALTER TABLE t ADD INDEX idx_t_wide (a, b, c, d, e, f);".into()),
            ("max-indexes-per-table", MySql, many_indexes.into()),
            (
                "no-redundant-index",
                MySql,
                "CREATE TABLE r (id BIGINT PRIMARY KEY, a INT, b INT, INDEX idx_r_ab (a, b));\nALTER TABLE r ADD INDEX idx_r_a (a);".into(),
            ),
            ("no-auto-increment-initial-value", MySql, "ALTER TABLE t AUTO_INCREMENT = 1000;".into()),
            ("max-columns-per-table", MySql, wide),
            ("no-partitioned-tables", MySql, "ALTER TABLE t PARTITION BY HASH (id) PARTITIONS 4;".into()),
            ("integer-primary-key", MySql, "ALTER TABLE t ADD COLUMN code VARCHAR(36) PRIMARY KEY;".into()),
            ("no-duplicate-columns", MySql, "ALTER TABLE t ADD COLUMN a INT, ADD COLUMN a INT;".into()),
            ("require-column-comment", MySql, "ALTER TABLE t ADD COLUMN n INT;".into()),
        ];
        let mut missed = Vec::new();
        for (rule, d, sql) in &cases {
            let m = super::all_meta().into_iter().find(|m| m.id == *rule).unwrap_or_else(|| panic!("no rule {rule}"));
            let r = crate::review_with(sql, *d, &crate::Settings::for_examples(m));
            if !r.findings.iter().any(|f| f.rule == *rule) {
                missed.push(format!("{rule} ({d:?}): {sql}"));
            }
        }
        assert!(missed.is_empty(), "rules that miss their ALTER form:\n{}", missed.join("\n"));
    }

    #[test]
    fn ids_are_unique_kebab_case_and_every_rule_has_a_failing_and_a_clean_example() {
        let mut seen = HashSet::new();
        for m in super::all_meta() {
            assert!(seen.insert(m.id), "duplicate {}", m.id);
            assert!(m.id.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{}", m.id);
            for d in m.engines {
                let settings = if m.id.starts_with("schema-") { fixture_settings() } else { crate::Settings::for_examples(m) };
                let review = |sql: &str, d: crate::SqlDialect| crate::review_with(sql, d, &settings);
                let bad = review(m.bad, *d);
                assert!(bad.findings.iter().any(|f| f.rule == m.id), "{} does not fire on its bad example ({d:?}): {:?}", m.id, bad.findings);
                let good = review(m.good, *d);
                assert!(!good.findings.iter().any(|f| f.rule == m.id), "{} fires on its good example ({d:?}): {:?}", m.id, good.findings);
                assert!(!good.findings.iter().any(|f| f.rule == "parse-error"), "{}'s good example does not parse ({d:?}): {:?}", m.id, good.findings);
            }
        }
    }
}
