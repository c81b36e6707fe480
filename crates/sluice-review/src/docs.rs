//! Rule documentation pages (`docs/rules/<id>.md`), generated from the rules' metadata so they cannot drift.

use crate::SqlDialect;
use crate::rule::RuleMeta;

pub fn rule_page(m: &RuleMeta) -> String {
    let engines: Vec<&str> = m.engines.iter().map(|e| if *e == SqlDialect::MySql { "MySQL/MariaDB" } else { "PostgreSQL" }).collect();
    let dialect = m.engines[0];
    let findings: Vec<String> = crate::review_with(m.bad, dialect, &crate::Settings::for_examples(m))
        .findings
        .iter()
        .filter(|f| f.rule == m.id)
        .map(|f| format!("- line {}, column {}: {}", f.line, f.column, f.message))
        .collect();
    format!(
        "# {id}\n\n{summary}.\n\n| | |\n|---|---|\n| category | {category:?} |\n| engines | {engines} |\n| default level | {level} |\n{params}\n**Instead:** {advice}.\n\n## Flagged\n\n```sql\n{bad}\n```\n\n{findings}\n\n## Clean\n\n```sql\n{good}\n```\n\nTurn it off or change its level in a policy file: `[levels] {id} = \"off\"` (see [../review.md](../review.md)); ignore one statement with `-- sluice:ignore {id}`.\n",
        id = m.id,
        summary = m.summary,
        category = m.category,
        engines = engines.join(", "),
        level = if m.opt_in { format!("off (opt-in; {} when on)", m.level.as_str()) } else { m.level.as_str().to_string() },
        params = params_table(m),
        advice = m.advice,
        bad = m.bad,
        good = m.good,
        findings = findings.join("\n"),
    )
}

/// The rule's parameters as a table (empty when it has none).
fn params_table(m: &RuleMeta) -> String {
    if m.params.is_empty() {
        return String::new();
    }
    let mut out = format!("\n`[params.{}]`:\n\n| parameter | value | default |\n|---|---|---|\n", m.id);
    for p in m.params {
        let kind = match p.kind {
            crate::rule::ParamKind::Count => "positive integer",
            crate::rule::ParamKind::Names => "list of names",
            crate::rule::ParamKind::Pattern => "regex",
        };
        out.push_str(&format!("| `{}` | {kind} | `{}` |\n", p.name, p.default));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::rule_page;
    use crate::SqlDialect;
    use crate::rules::all_meta;

    /// Every rule has its page in docs/rules, equal to what the metadata generates.
    /// Regenerate with `SLUICE_UPDATE_DOCS=1 cargo nextest run -p sluice-review docs`.
    #[test]
    fn docs_pages_match_the_rules() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/rules");
        let update = std::env::var("SLUICE_UPDATE_DOCS").is_ok();
        if update {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let mut index = String::from(
            "# Review rules\n\nGenerated from the rules' metadata (`sluice review --list-rules`).\n\n| rule | level | engines | summary |\n|---|---|---|---|\n",
        );
        for m in all_meta() {
            let page = rule_page(m);
            let path = dir.join(format!("{}.md", m.id));
            if update {
                std::fs::write(&path, &page).unwrap();
            } else {
                let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{} is missing: run with SLUICE_UPDATE_DOCS=1", path.display()));
                assert_eq!(on_disk, page, "{} is out of date: run with SLUICE_UPDATE_DOCS=1", path.display());
            }
            let engines: Vec<&str> = m.engines.iter().map(|e| if *e == SqlDialect::MySql { "mysql" } else { "postgres" }).collect();
            let level = if m.opt_in { "opt-in" } else { m.level.as_str() };
            index.push_str(&format!("| [{id}]({id}.md) | {level} | {} | {} |\n", engines.join(", "), m.summary, id = m.id));
        }
        let index_path = dir.join("README.md");
        if update {
            std::fs::write(&index_path, &index).unwrap();
        } else {
            assert_eq!(std::fs::read_to_string(&index_path).unwrap_or_default(), index, "docs/rules/README.md is out of date");
        }
    }

    /// The findings of every rule on its bad example, as one snapshot (message and position changes show in review).
    #[test]
    fn findings_on_bad_examples_snapshot() {
        let mut out = String::new();
        for m in all_meta() {
            for d in m.engines {
                for f in crate::review_with(m.bad, *d, &crate::Settings::for_examples(m)).findings.iter().filter(|f| f.rule == m.id) {
                    out.push_str(&format!("{:?} {}:{} {} {}\n", d, f.line, f.column, f.level.as_str(), f.rule));
                }
            }
        }
        insta::assert_snapshot!(out);
    }
}
