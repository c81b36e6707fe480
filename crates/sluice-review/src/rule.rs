//! What a rule is: metadata (id, category, engines, default level, documentation) and a check over one
//! parsed statement.

use sqlparser::ast::{Spanned, Statement};
use sqlparser::tokenizer::Span;

use crate::SqlDialect;
use crate::finding::Level;
use crate::split::Piece;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    StatementSafety,
    SchemaDesign,
    MigrationSafety,
}

/// A rule's description; `bad` and `good` are the examples its doc page and tests use.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleMeta {
    pub id: &'static str,
    pub category: Category,
    pub engines: &'static [SqlDialect],
    pub level: Level,
    pub summary: &'static str,
    /// What to do instead.
    pub advice: &'static str,
    pub bad: &'static str,
    pub good: &'static str,
    /// Off unless a policy turns it on: the rule enforces a team's convention (a required column list, a
    /// function deny-list) that no default can guess.
    pub opt_in: bool,
    /// The parameters the rule reads from `[params.<id>]`.
    pub params: &'static [Param],
}

impl RuleMeta {
    /// The fields most rules leave as they are (`..RuleMeta::DEFAULT`).
    pub const DEFAULT: RuleMeta = RuleMeta {
        id: "",
        category: Category::StatementSafety,
        engines: &[],
        level: Level::Warning,
        summary: "",
        advice: "",
        bad: "",
        good: "",
        opt_in: false,
        params: &[],
    };
}

/// What kind of value a parameter takes (checked when a policy is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamKind {
    /// A positive integer.
    Count,
    /// A list of names (compared case-insensitively).
    Names,
    /// A regular expression.
    Pattern,
}

/// One parameter of a rule.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Param {
    pub name: &'static str,
    pub kind: ParamKind,
    /// What the rule uses without a policy value, as written in docs.
    pub default: &'static str,
    /// A TOML value the rule's bad and good examples are checked with (empty: the default).
    pub example: &'static str,
}

/// What a rule sees of one statement.
pub struct Ctx<'a> {
    pub stmt: &'a Statement,
    pub dialect: SqlDialect,
    pub piece: &'a Piece,
    /// The statement's source text, for what the parser drops (e.g. `DROP INDEX CONCURRENTLY`).
    pub text: &'a str,
    /// The policy's settings (levels and parameters).
    pub settings: &'a crate::policy::Settings,
    /// The statement's index in the file.
    pub index: usize,
    /// Tables the file creates: lower-cased name → index of the creating statement.
    pub created: &'a std::collections::HashMap<String, usize>,
    /// The statement's code tokens, made once on first use and shared by the rules that read them.
    pub(crate) code: std::cell::OnceCell<Vec<crate::code_words::Code>>,
}

impl Ctx<'_> {
    /// The statement's code tokens (see `code_words`): tokenized once, however many rules ask.
    pub(crate) fn code(&self) -> &[crate::code_words::Code] {
        self.code.get_or_init(|| crate::code_words::code(self.text, self.dialect))
    }

    /// Whether the file created this table before this statement: it is new and empty, so what locks or
    /// rewrites a large table costs nothing here.
    pub fn is_new_table(&self, name: &sqlparser::ast::ObjectName) -> bool {
        let table = crate::rules::last_ident(name).to_ascii_lowercase();
        self.created.get(&table).is_some_and(|at| *at < self.index)
    }
}

/// The table a statement creates, read from its first words (`CREATE [TEMP|UNLOGGED] TABLE [IF NOT
/// EXISTS] name`), lower-cased and unquoted, last part of a qualified name.
pub fn created_table_name(upper_head: &str, text: &str) -> Option<String> {
    let mut words = upper_head.split(|c: char| c.is_whitespace() || c == '(').filter(|w| !w.is_empty());
    if words.next() != Some("CREATE") {
        return None;
    }
    let mut skipped = 1;
    for w in words.by_ref() {
        skipped += 1;
        match w {
            "GLOBAL" | "LOCAL" | "TEMP" | "TEMPORARY" | "UNLOGGED" | "OR" | "REPLACE" => continue,
            "TABLE" => break,
            _ => return None,
        }
    }
    let mut rest = text.split(|c: char| c.is_whitespace() || c == '(').filter(|w| !w.is_empty()).skip(skipped);
    let mut name = rest.next()?;
    if name.eq_ignore_ascii_case("IF") {
        rest.next();
        rest.next();
        name = rest.next()?;
    }
    let last = name.rsplit('.').next()?;
    Some(last.trim_matches(|c| c == '"' || c == '`').to_ascii_lowercase())
}

/// A place a rule points at: `None` means the statement's start.
pub type At = Option<Span>;

pub trait Rule: Sync {
    fn meta(&self) -> &'static RuleMeta;
    /// Returns the places (and optional extra detail) where the rule fires.
    fn check(&self, ctx: &Ctx<'_>) -> Vec<(At, Option<String>)>;
    /// The same check over a statement kind servers accept that the parser has no grammar for (`ALTER
    /// DATABASE`, `CREATE EVENT`, …), from its tokens; most rules have nothing to say there.
    fn check_unparsed(&self, _ctx: &UnparsedCtx<'_>) -> Vec<(At, Option<String>)> {
        Vec::new()
    }
}

/// What a rule sees of a statement the parser does not read.
pub struct UnparsedCtx<'a> {
    pub text: &'a str,
    pub dialect: SqlDialect,
    pub settings: &'a crate::policy::Settings,
}

/// The span of a node, for rules that point inside a statement.
pub fn span_of<T: Spanned>(node: &T) -> At {
    let s = node.span();
    (s.start.line > 0).then_some(s)
}

/// The span of an identifier.
pub fn ident_at(ident: &sqlparser::ast::Ident) -> At {
    (ident.span.start.line > 0).then_some(ident.span)
}

/// What a file-level rule sees of each statement: its head upper-cased (the first 256 bytes, enough for the
/// keywords text rules look at) and facts kept from its parse — the AST itself is dropped right after the
/// statement rules ran, so memory stays flat on large files.
pub struct StmtView<'a> {
    pub index: usize,
    pub piece: &'a Piece,
    /// The statement's whole text (for token scans of statements the parser does not read).
    pub text: &'a str,
    pub upper: String,
    pub facts: StmtFacts,
}

/// What file rules need from a parsed statement.
#[derive(Debug, Clone, Default)]
pub struct StmtFacts {
    pub parsed: bool,
    /// Lower-cased names.
    pub created_table: Option<String>,
    pub altered_table: Option<String>,
    /// Tables the statement changes.
    pub targets: Vec<String>,
    /// A table this CREATE TABLE makes without a primary key: (lower-cased name, name as written).
    pub created_without_key: Option<(String, String)>,
    /// The table (lower-cased) this ALTER TABLE gives a primary key.
    pub adds_primary_key: Option<String>,
    /// The table-level ENGINE this CREATE or ALTER TABLE sets (lower-cased), MySQL.
    pub engine: Option<String>,
    /// (parent, partition), lower-cased, of `ALTER TABLE parent ATTACH PARTITION partition …` (PostgreSQL).
    pub attaches_partition: Option<(String, String)>,
    /// Indexes and keys the statement gives tables.
    pub indexes: Vec<crate::rules::indexes::NewIndex>,
    /// Foreign keys the statement adds: (lower-cased table, lower-cased columns).
    pub foreign_keys: Vec<(String, Vec<String>)>,
    /// What the statement creates or drops without IF [NOT] EXISTS (`CREATE TABLE`, `ADD COLUMN`, …).
    pub unguarded: Vec<&'static str>,
    /// Constraints (lower-cased names) this ALTER TABLE adds NOT VALID, and those it validates.
    pub added_not_valid: Vec<String>,
    pub validated: Vec<String>,
}

/// A rule over the whole file (statement order matters: `SET lock_timeout` before, `BEGIN` around), or over
/// statements the parser does not understand (their text).
pub trait FileRule: Sync {
    fn meta(&self) -> &'static RuleMeta;
    /// (statement index, place, detail) for every firing.
    fn check(&self, stmts: &[StmtView<'_>], dialect: SqlDialect, settings: &crate::policy::Settings) -> Vec<(usize, At, Option<String>)>;
}

/// The first words of a statement, upper-cased, for text rules.
pub fn starts_with_words(upper: &str, words: &[&str]) -> bool {
    let mut it = upper.split_whitespace();
    words.iter().all(|w| it.next() == Some(*w))
}
