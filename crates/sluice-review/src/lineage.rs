//! Where each result column of a SELECT comes from: the base-table columns whose data can reach it, through
//! aliases, derived tables, CTEs, UNIONs, functions and scalar subqueries. Data export masks a result column
//! when any of its sources matches a masking rule, so renaming, wrapping or recombining a column never
//! carries its clear value out.
//!
//! The answer errs on the side of more sources: an identifier inside an expression counts every column of
//! that name in any relation the expression or its scope can see. What cannot be traced is refused, never
//! guessed: views (their definition hides the base columns), table functions, unknown tables, anything but
//! one SELECT.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, ObjectName, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Statement, TableFactor, TableWithJoins, visit_expressions,
    visit_relations,
};
use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect};
use sqlparser::parser::Parser;

use crate::SqlDialect;

/// A base-table column: `table.column`, lower-cased.
pub type Source = String;

/// One result column: its name and every base column its value can come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputColumn {
    pub name: String,
    pub sources: BTreeSet<Source>,
}

/// What the lineage needs from the database: a base table's columns, in order (`None`: no such base
/// table, or a view).
pub trait Catalog {
    fn columns(&self, schema: Option<&str>, table: &str) -> Option<Vec<String>>;
}

/// A relation in scope: its name or alias, and its columns with their sources.
#[derive(Debug, Clone)]
struct Relation {
    name: String,
    columns: Vec<(String, BTreeSet<Source>)>,
}

fn last(name: &ObjectName) -> String {
    name.0.last().map(|p| p.to_string().trim_matches(|c| c == '`' || c == '"').to_ascii_lowercase()).unwrap_or_default()
}

fn parts(name: &ObjectName) -> Vec<String> {
    name.0.iter().map(|p| p.to_string().trim_matches(|c| c == '`' || c == '"').to_string()).collect()
}

struct Tracer<'a> {
    catalog: &'a dyn Catalog,
    /// CTEs visible by name.
    ctes: Vec<Relation>,
}

impl Tracer<'_> {
    fn base(&self, name: &ObjectName) -> Result<Relation, String> {
        let p = parts(name);
        let table = last(name);
        if p.len() == 1
            && let Some(cte) = self.ctes.iter().rev().find(|c| c.name == table)
        {
            return Ok(cte.clone());
        }
        let (schema, t) = match p.as_slice() {
            [t] => (None, t.as_str()),
            [s, t] => (Some(s.as_str()), t.as_str()),
            _ => return Err(format!("`{name}` is not a table name")),
        };
        let cols = self
            .catalog
            .columns(schema, t)
            .ok_or_else(|| format!("`{name}` is not a base table Sluice can read the columns of (views and unknown tables cannot be traced)"))?;
        Ok(Relation {
            name: table.clone(),
            columns: cols
                .into_iter()
                .map(|c| {
                    let lc = c.to_ascii_lowercase();
                    (lc.clone(), BTreeSet::from([format!("{table}.{lc}")]))
                })
                .collect(),
        })
    }

    fn factor(&mut self, f: &TableFactor, outer: &[Relation]) -> Result<Vec<Relation>, String> {
        match f {
            TableFactor::Table { name, alias, args: None, .. } => {
                let mut r = self.base(name)?;
                if let Some(a) = alias {
                    r.name = a.name.value.to_ascii_lowercase();
                }
                Ok(vec![r])
            }
            TableFactor::Derived { subquery, alias, .. } => {
                let out = self.query(subquery, outer)?;
                let name = alias.as_ref().map(|a| a.name.value.to_ascii_lowercase()).unwrap_or_default();
                let renamed: Vec<String> = alias.as_ref().map(|a| a.columns.iter().map(|c| c.name.value.to_ascii_lowercase()).collect()).unwrap_or_default();
                let columns = out.into_iter().enumerate().map(|(i, c)| (renamed.get(i).cloned().unwrap_or(c.name), c.sources)).collect();
                Ok(vec![Relation { name, columns }])
            }
            TableFactor::NestedJoin { table_with_joins, .. } => self.from(std::slice::from_ref(table_with_joins.as_ref()), outer),
            other => Err(format!("`{other}` cannot be traced to base columns")),
        }
    }

    fn from(&mut self, from: &[TableWithJoins], outer: &[Relation]) -> Result<Vec<Relation>, String> {
        let mut rels = Vec::new();
        for t in from {
            rels.extend(self.factor(&t.relation, outer)?);
            for j in &t.joins {
                rels.extend(self.factor(&j.relation, outer)?);
            }
        }
        Ok(rels)
    }

    /// Every source an expression can carry: each identifier in it (subqueries included) resolved against
    /// the scope and against every base table the expression itself reads.
    fn expr(&mut self, e: &Expr, scope: &[Relation]) -> Result<BTreeSet<Source>, String> {
        let mut inner = Vec::new();
        let mut missing = None;
        let _ = visit_relations(e, |name| {
            match self.base(name) {
                Ok(r) => inner.push(r),
                Err(err) => missing = Some(err),
            }
            ControlFlow::<()>::Continue(())
        });
        if let Some(err) = missing {
            return Err(err);
        }
        let mut all: Vec<&Relation> = scope.iter().collect();
        all.extend(inner.iter());
        let mut out = BTreeSet::new();
        let _ = visit_expressions(e, |x| {
            match x {
                Expr::Identifier(id) => {
                    let col = id.value.to_ascii_lowercase();
                    for r in &all {
                        for (c, s) in &r.columns {
                            if *c == col {
                                out.extend(s.iter().cloned());
                            }
                        }
                    }
                }
                Expr::CompoundIdentifier(ids) => {
                    let col = ids.last().map(|i| i.value.to_ascii_lowercase()).unwrap_or_default();
                    let rel = ids.len().checked_sub(2).map(|i| ids[i].value.to_ascii_lowercase());
                    let named: Vec<&&Relation> = all.iter().filter(|r| Some(&r.name) == rel.as_ref()).collect();
                    // An alias not found: count the column of that name anywhere.
                    let pool: Vec<&Relation> = if named.is_empty() { all.clone() } else { named.into_iter().copied().collect() };
                    for r in pool {
                        for (c, s) in &r.columns {
                            if *c == col {
                                out.extend(s.iter().cloned());
                            }
                        }
                    }
                }
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
        Ok(out)
    }

    fn select(&mut self, s: &Select, outer: &[Relation]) -> Result<Vec<OutputColumn>, String> {
        let mut scope = self.from(&s.from, outer)?;
        scope.extend(outer.iter().cloned());
        let local = scope.len() - outer.len();
        let mut out = Vec::new();
        for item in &s.projection {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    let name = match e {
                        Expr::Identifier(i) => i.value.to_ascii_lowercase(),
                        Expr::CompoundIdentifier(ids) => ids.last().map(|i| i.value.to_ascii_lowercase()).unwrap_or_default(),
                        other => other.to_string(),
                    };
                    out.push(OutputColumn { name, sources: self.expr(e, &scope)? });
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    out.push(OutputColumn { name: alias.value.to_ascii_lowercase(), sources: self.expr(expr, &scope)? })
                }
                SelectItem::Wildcard(_) => {
                    for r in &scope[..local] {
                        out.extend(r.columns.iter().map(|(c, s)| OutputColumn { name: c.clone(), sources: s.clone() }));
                    }
                }
                SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(n), _) => {
                    let rel = last(n);
                    let r = scope[..local].iter().find(|r| r.name == rel).ok_or_else(|| format!("`{n}.*` names no relation of the query"))?;
                    out.extend(r.columns.iter().map(|(c, s)| OutputColumn { name: c.clone(), sources: s.clone() }));
                }
                other => return Err(format!("`{other}` cannot be traced to base columns")),
            }
        }
        Ok(out)
    }

    fn set_expr(&mut self, body: &SetExpr, outer: &[Relation]) -> Result<Vec<OutputColumn>, String> {
        match body {
            SetExpr::Select(s) => self.select(s, outer),
            SetExpr::Query(q) => self.query(q, outer),
            SetExpr::SetOperation { left, right, .. } => {
                let mut l = self.set_expr(left, outer)?;
                let r = self.set_expr(right, outer)?;
                if l.len() != r.len() {
                    return Err("the sides of a set operation have different numbers of columns".into());
                }
                for (a, b) in l.iter_mut().zip(r) {
                    a.sources.extend(b.sources);
                }
                Ok(l)
            }
            SetExpr::Values(v) => {
                let n = v.rows.first().map(|r| r.len()).unwrap_or(0);
                Ok((0..n).map(|i| OutputColumn { name: format!("column{}", i + 1), sources: BTreeSet::new() }).collect())
            }
            other => Err(format!("`{other}` cannot be traced to base columns")),
        }
    }

    fn query(&mut self, q: &Query, outer: &[Relation]) -> Result<Vec<OutputColumn>, String> {
        let depth = self.ctes.len();
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                let cols = self.query(&cte.query, outer)?;
                let renamed: Vec<String> = cte.alias.columns.iter().map(|c| c.name.value.to_ascii_lowercase()).collect();
                let columns = cols.into_iter().enumerate().map(|(i, c)| (renamed.get(i).cloned().unwrap_or(c.name), c.sources)).collect();
                self.ctes.push(Relation { name: cte.alias.name.value.to_ascii_lowercase(), columns });
            }
        }
        let out = self.set_expr(&q.body, outer);
        self.ctes.truncate(depth);
        out
    }
}

/// The result columns of one SELECT and their sources, or why they cannot be traced.
pub fn trace(sql: &str, dialect: SqlDialect, catalog: &dyn Catalog) -> Result<Vec<OutputColumn>, String> {
    let parsed = match dialect {
        SqlDialect::MySql => Parser::parse_sql(&MySqlDialect {}, sql),
        SqlDialect::Postgres => Parser::parse_sql(&PostgreSqlDialect {}, sql),
    }
    .map_err(|e| format!("it does not parse: {e}"))?;
    let [Statement::Query(q)] = parsed.as_slice() else { return Err("an export runs exactly one SELECT".into()) };
    // Every relation anywhere in the query (WHERE and HAVING included) must be a CTE or a base table.
    struct Ctes(BTreeSet<String>);
    impl sqlparser::ast::Visitor for Ctes {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            for c in q.with.iter().flat_map(|w| &w.cte_tables) {
                self.0.insert(c.alias.name.value.to_ascii_lowercase());
            }
            ControlFlow::Continue(())
        }
    }
    let mut ctes = Ctes(BTreeSet::new());
    let _ = sqlparser::ast::Visit::visit(q.as_ref(), &mut ctes);
    let tracer = Tracer { catalog, ctes: Vec::new() };
    let mut bad = None;
    let _ = visit_relations(q.as_ref(), |name| {
        if !(parts(name).len() == 1 && ctes.0.contains(&last(name)))
            && let Err(e) = tracer.base(name)
        {
            bad = Some(e);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    if let Some(e) = bad {
        return Err(e);
    }
    Tracer { catalog, ctes: Vec::new() }.query(q, &[])
}

/// A catalog from a map of `table` (lower-cased, any schema) to its columns, for tests and for exports
/// that read the target database's columns once.
pub struct MapCatalog(pub BTreeMap<String, Vec<String>>);

impl Catalog for MapCatalog {
    fn columns(&self, _schema: Option<&str>, table: &str) -> Option<Vec<String>> {
        self.0.get(&table.to_ascii_lowercase()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> MapCatalog {
        MapCatalog(BTreeMap::from([
            ("users".to_string(), vec!["id".to_string(), "name".to_string(), "email".to_string()]),
            ("orders".to_string(), vec!["id".to_string(), "user_id".to_string(), "total".to_string()]),
        ]))
    }

    fn sources(sql: &str) -> Vec<(String, Vec<String>)> {
        trace(sql, SqlDialect::MySql, &catalog()).unwrap().into_iter().map(|c| (c.name, c.sources.into_iter().collect())).collect()
    }

    fn has_email(sql: &str) -> bool {
        sources(sql).iter().any(|(_, s)| s.iter().any(|x| x == "users.email"))
    }

    #[test]
    fn every_way_of_reaching_a_column_keeps_its_source() {
        for sql in [
            "SELECT email FROM users",
            "SELECT email AS e FROM users",
            "SELECT UPPER(u.email) FROM users u",
            "SELECT e FROM (SELECT email AS e FROM users) x",
            "SELECT x.c FROM (SELECT email FROM users) AS x (c)",
            "SELECT name FROM users UNION SELECT email FROM users",
            "SELECT (SELECT email FROM users LIMIT 1) AS x FROM orders",
            "SELECT * FROM users",
            "SELECT u.* FROM users u JOIN orders o ON o.user_id = u.id",
            "WITH m AS (SELECT email AS mail FROM users) SELECT mail FROM m",
            "SELECT CONCAT(name, '<', email, '>') FROM users",
            "SELECT CASE WHEN id > 1 THEN email ELSE name END FROM users",
        ] {
            assert!(has_email(sql), "{sql}: {:?}", sources(sql));
        }
        assert!(!has_email("SELECT total FROM orders"));
        assert!(!has_email("SELECT 'email' AS email FROM orders"), "a literal carries no data");
        assert_eq!(sources("SELECT id, total FROM orders")[1], ("total".to_string(), vec!["orders.total".to_string()]));
    }

    #[test]
    fn what_cannot_be_traced_is_refused() {
        for (sql, why) in [
            ("SELECT * FROM user_view", "views and unknown tables"),
            ("UPDATE users SET name = 'x'", "exactly one SELECT"),
            ("SELECT 1; SELECT 2", "exactly one SELECT"),
            ("SELECT email FROM users WHERE id IN (SELECT id FROM secret_view)", "secret_view"),
        ] {
            let e = trace(sql, SqlDialect::MySql, &catalog()).unwrap_err();
            assert!(e.contains(why), "{sql}: {e}");
        }
    }
}
