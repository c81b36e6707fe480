//! Policies: which rules run at which level, and their parameters, per environment.
//!
//! ```toml
//! [levels]                  # every environment
//! no-select-star = "off"
//! require-table-comment = "warning"
//!
//! [env.prod.levels]         # only with --env prod
//! no-drop-table = "error"
//!
//! [params.max-in-list]
//! max = 500
//! ```
//! Built in: `prod` raises every migration-safety warning to an error; `dev` turns info rules off.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::finding::Level;
use crate::rule::{Category, ParamKind, RuleMeta};
use crate::rules;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LevelSetting {
    Off,
    Info,
    Warning,
    Error,
}

impl LevelSetting {
    fn level(self) -> Option<Level> {
        match self {
            LevelSetting::Off => None,
            LevelSetting::Info => Some(Level::Info),
            LevelSetting::Warning => Some(Level::Warning),
            LevelSetting::Error => Some(Level::Error),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub levels: BTreeMap<String, LevelSetting>,
    #[serde(default)]
    pub env: BTreeMap<String, EnvPolicy>,
    #[serde(default)]
    pub params: BTreeMap<String, BTreeMap<String, toml::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvPolicy {
    #[serde(default)]
    pub levels: BTreeMap<String, LevelSetting>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("`{path}`: {message}")]
    Invalid { path: String, message: String },
}

/// The effective settings of one review.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Rule id → level; a rule missing here runs at its default level; `None` turns it off.
    pub levels: BTreeMap<String, Option<Level>>,
    pub params: BTreeMap<String, BTreeMap<String, toml::Value>>,
    /// Facts from a live database, for the schema-aware rules (they stay silent without it).
    pub schema: Option<crate::schema::SchemaInfo>,
    /// Naming patterns from `[params.<rule>] pattern = "regex"`, compiled once.
    pub patterns: BTreeMap<String, regex::Regex>,
}

impl Settings {
    /// The level a rule runs at, or `None` when it is off.
    pub fn level(&self, id: &str, default: Level) -> Option<Level> {
        self.levels.get(id).copied().unwrap_or(Some(default))
    }

    /// The level a rule runs at under these settings: the policy's, else its default (none for an opt-in rule).
    pub fn level_of(&self, m: &RuleMeta) -> Option<Level> {
        match self.levels.get(m.id) {
            Some(l) => *l,
            None => (!m.opt_in).then_some(m.level),
        }
    }

    /// The settings a rule's bad and good examples are checked (and documented) with: the rule on at its
    /// level, with its parameters' example values.
    pub fn for_examples(m: &RuleMeta) -> Settings {
        let mut s = Settings::default();
        s.levels.insert(m.id.to_string(), Some(m.level));
        let params: BTreeMap<String, toml::Value> = m
            .params
            .iter()
            .filter(|p| !p.example.is_empty())
            .map(|p| {
                let v: toml::Table = toml::from_str(&format!("v = {}", p.example)).expect("a rule's example parameter is TOML");
                (p.name.to_string(), v["v"].clone())
            })
            .collect();
        if !params.is_empty() {
            s.params.insert(m.id.to_string(), params);
        }
        s
    }

    /// A naming rule's pattern: the policy's, or `default` (compiled once per process).
    pub fn pattern(&self, id: &str, default: &'static std::sync::LazyLock<regex::Regex>) -> &regex::Regex {
        self.patterns.get(id).unwrap_or(default)
    }

    /// A list parameter of a rule (`allowed = ["utf8mb4", …]`), lower-cased; `None` when the policy has none.
    pub fn list(&self, id: &str, name: &str) -> Option<Vec<String>> {
        let items = self.params.get(id)?.get(name)?.as_array()?;
        Some(items.iter().filter_map(|v| v.as_str()).map(str::to_ascii_lowercase).collect())
    }

    /// An integer parameter of a rule, or `default`.
    pub fn int(&self, id: &str, name: &str, default: usize) -> usize {
        self.params.get(id).and_then(|p| p.get(name)).and_then(|v| v.as_integer()).and_then(|i| usize::try_from(i).ok()).unwrap_or(default)
    }
}

impl Policy {
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let de = toml::Deserializer::parse(text).map_err(|e| PolicyError::Invalid { path: "(syntax)".into(), message: e.to_string().trim().to_string() })?;
        let policy: Policy = serde_path_to_error::deserialize(de)
            .map_err(|e| PolicyError::Invalid { path: e.path().to_string(), message: e.into_inner().message().to_string() })?;
        let known: Vec<&str> = rules::all_meta().iter().map(|m| m.id).collect();
        let check = |path: String, id: &str| {
            if known.contains(&id) { Ok(()) } else { Err(PolicyError::Invalid { path, message: format!("no rule `{id}` (see `sluice review --list-rules`)") }) }
        };
        for id in policy.levels.keys() {
            check(format!("levels.{id}"), id)?;
        }
        for (env, e) in &policy.env {
            for id in e.levels.keys() {
                check(format!("env.{env}.levels.{id}"), id)?;
            }
        }
        for (id, params) in &policy.params {
            check(format!("params.{id}"), id)?;
            let meta = rules::all_meta().into_iter().find(|m| m.id == id).expect("checked above");
            for (name, v) in params {
                let path = format!("params.{id}.{name}");
                let Some(param) = meta.params.iter().find(|p| p.name == name) else {
                    let takes: Vec<String> = meta.params.iter().map(|p| format!("`{}`", p.name)).collect();
                    let message = if takes.is_empty() { format!("`{id}` takes no parameters") } else { format!("`{id}` takes {}", takes.join(", ")) };
                    return Err(PolicyError::Invalid { path, message });
                };
                let fits = match param.kind {
                    ParamKind::Count => v.as_integer().is_some_and(|i| i >= 1),
                    ParamKind::Names => v.as_array().is_some_and(|a| a.iter().all(|v| v.is_str())),
                    ParamKind::Pattern => match v.as_str() {
                        Some(p) => {
                            regex::Regex::new(p).map_err(|e| PolicyError::Invalid { path: path.clone(), message: format!("not a valid regex: {e}") })?;
                            true
                        }
                        None => false,
                    },
                };
                if !fits {
                    let want = match param.kind {
                        ParamKind::Count => "a positive integer",
                        ParamKind::Names => "a list of names",
                        ParamKind::Pattern => "a regex string",
                    };
                    return Err(PolicyError::Invalid { path, message: format!("expected {want}") });
                }
            }
        }
        Ok(policy)
    }

    /// Settings for an environment: built-in defaults for it, then `[levels]`, then `[env.NAME.levels]`.
    pub fn settings(&self, env: Option<&str>) -> Settings {
        let mut levels: BTreeMap<String, Option<Level>> = BTreeMap::new();
        for m in rules::all_meta() {
            match env {
                Some("prod") if m.category == Category::MigrationSafety && m.level == Level::Warning => {
                    levels.insert(m.id.to_string(), Some(Level::Error));
                }
                Some("dev") if m.level == Level::Info && !m.opt_in => {
                    levels.insert(m.id.to_string(), None);
                }
                _ => {}
            }
        }
        for (id, l) in &self.levels {
            levels.insert(id.clone(), l.level());
        }
        if let Some(e) = env.and_then(|e| self.env.get(e)) {
            for (id, l) in &e.levels {
                levels.insert(id.clone(), l.level());
            }
        }
        let patterns = self
            .params
            .iter()
            .filter_map(|(id, p)| p.get("pattern").and_then(|v| v.as_str()).and_then(|p| regex::Regex::new(p).ok()).map(|r| (id.clone(), r)))
            .collect();
        Settings { levels, params: self.params.clone(), schema: None, patterns }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_env_overrides_and_errors_with_paths() {
        let p = Policy::parse("[levels]\nno-select-star = \"off\"\n[env.prod.levels]\nno-drop-table = \"error\"\n[params.max-in-list]\nmax = 3\n").unwrap();
        let prod = p.settings(Some("prod"));
        assert_eq!(prod.level("no-select-star", Level::Info), None);
        assert_eq!(prod.level("no-drop-table", Level::Warning), Some(Level::Error));
        assert_eq!(prod.level("no-drop-column", Level::Warning), Some(Level::Error), "prod is stricter by default");
        assert_eq!(p.settings(Some("dev")).level("no-drop-column", Level::Warning), Some(Level::Warning));
        assert_eq!(p.settings(None).int("max-in-list", "max", 1000), 3);
        let err = Policy::parse("[levels]\nno-such-rule = \"off\"\n").unwrap_err().to_string();
        assert!(err.contains("`levels.no-such-rule`"), "{err}");
        let p = Policy::parse("[params.table-name-pattern]\npattern = \"^t_[a-z]+$\"\n").unwrap();
        let r = crate::review_with("CREATE TABLE orders (id BIGINT PRIMARY KEY);", crate::SqlDialect::MySql, &p.settings(None));
        assert!(r.findings.iter().any(|f| f.rule == "table-name-pattern" && f.message.contains("^t_[a-z]+$")), "{:?}", r.findings);
        let err = Policy::parse("[params.table-name-pattern]\npattern = \"(\"\n").unwrap_err().to_string();
        assert!(err.contains("params.table-name-pattern.pattern"), "{err}");
        let err = Policy::parse("[levels]\nno-select-star = \"loud\"\n").unwrap_err().to_string();
        assert!(err.contains("levels.no-select-star"), "{err}");
    }

    #[test]
    fn allow_lists_are_policy_parameters() {
        let sql = "CREATE TABLE t (id BIGINT PRIMARY KEY) DEFAULT CHARSET=latin1 COLLATE=latin1_swedish_ci;";
        let fired = |p: &Policy| {
            let r = crate::review_with(sql, crate::SqlDialect::MySql, &p.settings(None));
            r.findings.iter().map(|f| f.rule.clone()).filter(|r| r.ends_with("allow-list")).collect::<Vec<_>>()
        };
        assert_eq!(fired(&Policy::default()), ["charset-allow-list", "collation-allow-list"]);
        let legacy = Policy::parse(
            "[params.charset-allow-list]
allowed = [\"utf8mb4\", \"LATIN1\"]
[params.collation-allow-list]
allowed = [\"latin1_swedish_ci\"]
",
        )
        .unwrap();
        assert!(fired(&legacy).is_empty(), "{:?}", fired(&legacy));
        let err = Policy::parse(
            "[params.charset-allow-list]
allowed = [1]
",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("params.charset-allow-list.allowed"), "{err}");
        let err = Policy::parse(
            "[params.no-select-star]
allowed = [\"x\"]
",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("params.no-select-star.allowed"), "{err}");
    }
}
