//! Silences: label matchers (`=`, `!=`, `=~`, `!~`, regexes anchored as in PromQL) over a time span.
//! Matchers are checked by building the equivalent PromQL selector, so their syntax and semantics are
//! exactly PromQL's.

use promql_parser::label::Matcher;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    /// `=` (default), `!=`, `=~` or `!~`.
    #[serde(default = "eq")]
    pub op: String,
}

fn eq() -> String {
    "=".into()
}

/// Parses matchers into PromQL's; errors name the matcher (`matchers[i]`).
pub fn compile(matchers: &[SilenceMatcher]) -> Result<Vec<Matcher>, (String, String)> {
    if matchers.is_empty() {
        return Err(("matchers".into(), "at least one matcher is required (a silence of everything is refused)".into()));
    }
    let mut out = Vec::new();
    for (i, m) in matchers.iter().enumerate() {
        let field = format!("matchers[{i}]");
        if !["=", "!=", "=~", "!~"].contains(&m.op.as_str()) {
            return Err((field, format!("`{}`: op must be =, !=, =~ or !~", m.op)));
        }
        if m.name.is_empty() || !m.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err((field, format!("`{}` is not a label name", m.name)));
        }
        let quoted = serde_json::to_string(&m.value).expect("strings serialise");
        let sel = format!("{{{}{}{}}}", m.name, m.op, quoted);
        match promql_parser::parser::parse(&sel) {
            Ok(promql_parser::parser::Expr::VectorSelector(vs)) => out.extend(vs.matchers.matchers),
            Ok(_) => return Err((field, "not a matcher".into())),
            Err(e) => return Err((field, e)),
        }
    }
    Ok(out)
}

/// The matchers of every silence in force at `now` (a stored silence that no longer compiles is skipped).
pub async fn active(store: &sluice_store::Store, now: i64) -> Result<Vec<Vec<Matcher>>, sluice_store::StoreError> {
    Ok(store
        .list_silences()
        .await?
        .into_iter()
        .filter(|s| s.starts_at <= now)
        .filter_map(|s| serde_json::from_value::<Vec<SilenceMatcher>>(s.matchers).ok())
        .filter_map(|m| compile(&m).ok())
        .collect())
}

/// Whether any of `silences` matches `labels`.
pub fn silenced(silences: &[Vec<Matcher>], labels: &Map<String, Value>) -> bool {
    silences.iter().any(|m| matches(m, labels))
}

pub fn matches(matchers: &[Matcher], labels: &Map<String, Value>) -> bool {
    matchers.iter().all(|m| m.is_match(labels.get(&m.name).and_then(Value::as_str).unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_follow_promql() {
        let ms = compile(&[
            SilenceMatcher { name: "alertname".into(), value: "High.*".into(), op: "=~".into() },
            SilenceMatcher { name: "instance".into(), value: "db\"1".into(), op: "=".into() },
        ])
        .unwrap();
        let l = |a: &str, i: &str| serde_json::json!({"alertname": a, "instance": i}).as_object().unwrap().clone();
        assert!(matches(&ms, &l("HighLoad", "db\"1")));
        assert!(!matches(&ms, &l("LowLoad", "db\"1")));
        assert!(!matches(&ms, &l("HighLoad", "db2")));
        assert_eq!(compile(&[]).unwrap_err().0, "matchers");
        assert_eq!(compile(&[SilenceMatcher { name: "a".into(), value: "(".into(), op: "=~".into() }]).unwrap_err().0, "matchers[0]");
    }
}
