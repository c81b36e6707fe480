//! Templates over a change: `{column}` for a row value, `{$db}`, `{$table}`, `{$op}` for the database, the
//! table and the operation (`insert`, `update`, `delete`, `snapshot`), and `{$field}` for the value column
//! being turned into a metric. Shaping and the message sinks' subjects, topics and keys use them.

use sluice_core::change::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Column(String),
    Db,
    Table,
    Field,
    Op,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Names given to a render.
pub struct Scope<'a> {
    pub db: &'a str,
    pub table: &'a str,
    pub field: &'a str,
    /// The operation's name (`insert` …); empty where no change is at hand.
    pub op: &'a str,
    pub row: &'a Row,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed `{{` at byte {at}")]
    Unclosed { at: usize },
    #[error("unknown variable `{{${name}}}` (known: {{$db}}, {{$table}}, {{$op}}, {{$field}})")]
    UnknownVariable { name: String },
    #[error("empty `{{}}` at byte {at}")]
    Empty { at: usize },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("column `{0}` is not in the row")]
    MissingColumn(String),
    #[error("column `{0}` is NULL")]
    NullColumn(String),
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let close = rest[open..].find('}').ok_or(TemplateError::Unclosed { at: offset + open })? + open;
            let name = rest[open + 1..close].trim();
            parts.push(match name {
                "" => return Err(TemplateError::Empty { at: offset + open }),
                "$db" => Part::Db,
                "$table" => Part::Table,
                "$field" => Part::Field,
                "$op" => Part::Op,
                n if n.starts_with('$') => return Err(TemplateError::UnknownVariable { name: n[1..].to_string() }),
                n => Part::Column(n.to_string()),
            });
            offset += close + 1;
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// Columns the template reads.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Column(c) => Some(c.as_str()),
            _ => None,
        })
    }

    /// Renders; a NULL column is an error when `null_is_error`, else renders as empty text.
    pub fn render(&self, scope: &Scope<'_>, null_is_error: bool) -> Result<String, RenderError> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Db => out.push_str(scope.db),
                Part::Table => out.push_str(scope.table),
                Part::Field => out.push_str(scope.field),
                Part::Op => out.push_str(scope.op),
                Part::Column(c) => match scope.row.get(c) {
                    None => return Err(RenderError::MissingColumn(c.clone())),
                    Some(v) => match v.as_text() {
                        Some(t) => out.push_str(&t),
                        None if null_is_error => return Err(RenderError::NullColumn(c.clone())),
                        None => {}
                    },
                },
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_core::Value;
    use sluice_core::change::Column;

    use super::*;

    fn row() -> Row {
        let columns: Arc<[Column]> = vec![Column { name: "host".into(), primary_key: false }, Column { name: "region".into(), primary_key: false }].into();
        Row { columns, values: vec![Value::String("web1".into()), Value::Null] }
    }

    #[test]
    fn renders_columns_and_variables() {
        let r = row();
        let s = Scope { db: "shop", table: "orders", field: "amount", op: "insert", row: &r };
        assert_eq!(Template::parse("{$table}.{$field}").unwrap().render(&s, true).unwrap(), "orders.amount");
        assert_eq!(Template::parse("host-{host}").unwrap().render(&s, true).unwrap(), "host-web1");
        assert_eq!(Template::parse("{region}").unwrap().render(&s, false).unwrap(), "");
        assert_eq!(Template::parse("{region}").unwrap().render(&s, true), Err(RenderError::NullColumn("region".into())));
        assert_eq!(Template::parse("{nope}").unwrap().render(&s, true), Err(RenderError::MissingColumn("nope".into())));
    }

    #[test]
    fn parse_errors() {
        assert_eq!(Template::parse("a{b"), Err(TemplateError::Unclosed { at: 1 }));
        assert!(matches!(Template::parse("{$x}"), Err(TemplateError::UnknownVariable { .. })));
        assert_eq!(Template::parse("a{}"), Err(TemplateError::Empty { at: 1 }));
    }
}
