//! Collected series in the Prometheus text exposition format (version 0.0.4): one `# TYPE name untyped`
//! line per metric name, then `name{labels} value`. Sample timestamps are left out, as exporters do, so
//! the scraping Prometheus stamps them and its staleness handling works.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use sluice_tsdb::Labels;

pub fn render(out: &mut String, latest: &[(Arc<Labels>, i64, f64)], visible: Option<&BTreeSet<String>>) {
    let mut last_name = String::new();
    for (labels, _, value) in latest {
        if let Some(v) = visible
            && !labels.get("instance_id").is_some_and(|id| v.contains(id))
        {
            continue;
        }
        let Some(name) = labels.name() else { continue };
        if name != last_name {
            let _ = writeln!(out, "# TYPE {name} untyped");
            last_name = name.to_string();
        }
        let _ = writeln!(out, "{labels} {}", sluice_tsdb::query::format_value(*value));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_the_text_format_and_hides_invisible_instances() {
        let l = |inst: &str| std::sync::Arc::new(sluice_tsdb::Labels::metric("up", &[("instance_id", inst), ("instance", r#"a"b"#)]));
        let mut out = String::new();
        let visible = std::collections::BTreeSet::from(["i1".to_string()]);
        super::render(&mut out, &[(l("i1"), 0, 1.0), (l("i2"), 0, 0.0)], Some(&visible));
        assert_eq!(out, "# TYPE up untyped\nup{instance=\"a\\\"b\",instance_id=\"i1\"} 1\n");
    }
}
