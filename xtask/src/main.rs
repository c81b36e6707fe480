//! `cargo x new-rule NAME [--file] [--engines both|mysql|postgres]`: writes
//! `crates/sluice-review/src/rules/[file/]NAME.rs` (metadata, check, a test of the ALTER form and of the rule's
//! words inside a comment, a string and a quoted name) and adds it to the one registry in `rules/mod.rs`. The
//! doc page and the snapshot follow from the metadata: `SLUICE_UPDATE_DOCS=1 cargo nextest run -p sluice-review
//! docs` and `INSTA_UPDATE=always cargo nextest run -p sluice-review`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cargo x: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<String, String> {
    match args.first().map(String::as_str) {
        Some("new-rule") => new_rule(&args[1..]),
        _ => Err("usage: cargo x new-rule NAME [--file] [--engines both|mysql|postgres]".into()),
    }
}

fn new_rule(args: &[String]) -> Result<String, String> {
    let id = args.first().ok_or("new-rule needs a rule id, e.g. no-drop-sequence")?;
    if !id.chars().all(|c| c.is_ascii_lowercase() || c == '-') || id.split('-').any(str::is_empty) {
        return Err(format!("`{id}`: a rule id is kebab-case (a-z and -)"));
    }
    let file = args.iter().any(|a| a == "--file");
    let engines = match args.iter().position(|a| a == "--engines").and_then(|i| args.get(i + 1)).map(String::as_str) {
        None | Some("both") => "BOTH",
        Some("mysql") => "MYSQL",
        Some("postgres") => "POSTGRES",
        Some(other) => return Err(format!("--engines {other}: one of both, mysql, postgres")),
    };
    let module = id.replace('-', "_");
    let ty: String = id.split('-').map(|w| w[..1].to_ascii_uppercase() + &w[1..]).collect();
    let root = workspace_root()?;
    let rules = root.join("crates/sluice-review/src/rules");
    let path = if file { rules.join("file").join(format!("{module}.rs")) } else { rules.join(format!("{module}.rs")) };
    if path.exists() {
        return Err(format!("{} exists", path.display()));
    }
    std::fs::write(&path, source(id, &ty, engines, file)).map_err(|e| format!("{}: {e}", path.display()))?;
    register(&rules, &module, &ty, file)?;
    Ok(format!(
        "wrote {}\nnext: fill in the summary, advice, examples and check; then\n  SLUICE_UPDATE_DOCS=1 cargo nextest run -p sluice-review docs\n  INSTA_UPDATE=always cargo nextest run -p sluice-review",
        path.display()
    ))
}

fn workspace_root() -> Result<PathBuf, String> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(Path::to_path_buf).ok_or_else(|| "xtask has no parent directory".into())
}

/// Adds the rule to `registry!` in rules/mod.rs (and `pub mod` in rules/file/mod.rs for a file rule).
fn register(rules: &Path, module: &str, ty: &str, file: bool) -> Result<(), String> {
    let mod_rs = rules.join("mod.rs");
    let text = std::fs::read_to_string(&mod_rs).map_err(|e| format!("{}: {e}", mod_rs.display()))?;
    let marker = if file { "    file: [\n" } else { "    statement: [\n" };
    let at = text.find(marker).ok_or_else(|| format!("{}: no `{}` list in registry!", mod_rs.display(), marker.trim()))? + marker.len();
    let text = format!("{}        {module}::{ty},\n{}", &text[..at], &text[at..]);
    std::fs::write(&mod_rs, text).map_err(|e| format!("{}: {e}", mod_rs.display()))?;
    if file {
        let file_mod = rules.join("file/mod.rs");
        let mut text = std::fs::read_to_string(&file_mod).map_err(|e| format!("{}: {e}", file_mod.display()))?;
        text.push_str(&format!("pub mod {module};\n"));
        std::fs::write(&file_mod, text).map_err(|e| format!("{}: {e}", file_mod.display()))?;
    }
    Ok(())
}

fn source(id: &str, ty: &str, engines: &str, file: bool) -> String {
    let (head, check) = if file {
        (
            format!("use crate::finding::Level;\nuse crate::rule::{{Category, RuleMeta}};\nuse crate::rules::{engines};\n\nfile_rule!("),
            "    |stmts, _dialect, _settings| {\n        // Each statement's head is in `s.upper`, its facts in `s.facts`, its text in `s.text`.\n        stmts.iter().filter(|_s| false).map(|s| (s.index, None, None)).collect()\n    }".to_string(),
        )
    } else {
        (
            format!("use sqlparser::ast::Statement;\n\nuse super::{engines};\nuse crate::finding::Level;\nuse crate::rule::{{Category, RuleMeta}};\n\nrule!("),
            "    |ctx| {\n        // `ctx.stmt` is the parsed statement; `ctx.code()` its code tokens; `super::columns::columns`\n        // every column it introduces or retypes.\n        match ctx.stmt {\n            Statement::Query(_) => vec![],\n            _ => vec![],\n        }\n    }".to_string(),
        )
    };
    format!(
        r#"{head}
    {ty},
    RuleMeta {{
        id: "{id}",
        category: Category::SchemaDesign,
        engines: {engines},
        level: Level::Warning,
        summary: "",
        advice: "",
        bad: "",
        good: "",
        ..RuleMeta::DEFAULT
    }},
{check}
);

#[cfg(test)]
mod tests {{
    use crate::SqlDialect;

    fn fired(sql: &str, d: SqlDialect) -> usize {{
        crate::review(sql, d).findings.iter().filter(|f| f.rule == "{id}").count()
    }}

    #[test]
    fn alter_forms_and_words_outside_code() {{
        // The ALTER form of what the rule checks, then its words in a name, a string and a comment.
        assert_eq!(fired("", SqlDialect::MySql), 0);
    }}
}}
"#
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_checked_and_the_source_names_the_rule() {
        assert!(super::new_rule(&["Bad_Name".into()]).is_err());
        assert!(super::new_rule(&["no--gap".into()]).is_err(), "an empty segment");
        assert!(super::new_rule(&["ok".into(), "--engines".into(), "oracle".into()]).is_err());
        let src = super::source("no-thing", "NoThing", "POSTGRES", false);
        assert!(src.contains("id: \"no-thing\"") && src.contains("    NoThing,") && src.contains("engines: POSTGRES"));
        assert!(super::source("no-thing", "NoThing", "BOTH", true).starts_with("use crate::finding::Level;"));
    }
}
