//! `sluice alert list|rules|add-rule|silence|unsilence` and `sluice metrics query`: alerting and the
//! time-series store from the terminal, through the same API as everything else.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::instance::urlencode;
use super::{print_json, print_table};
use crate::client::{Client, ServerArgs};

#[derive(Debug, Args)]
pub struct AlertCmd {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub action: AlertAction,
}

#[derive(Debug, Subcommand)]
pub enum AlertAction {
    /// Alerts, newest first: the active ones, or those in one state.
    List {
        /// pending, firing, nodata or resolved.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Alert rules.
    Rules {
        #[arg(long)]
        json: bool,
    },
    /// Add a rule from a JSON file (docs/monitoring.md, "Alert rules"); `-` reads standard input.
    AddRule { file: String },
    /// Silence the alerts matching every `--match` (`name=value`, `name!=value`, `name=~regex`, `name!~regex`).
    Silence {
        #[arg(long = "match", required = true)]
        matchers: Vec<String>,
        /// e.g. 2h.
        #[arg(long)]
        duration: String,
        /// Why, and who is on it.
        #[arg(long)]
        comment: String,
    },
    /// End a silence now.
    Unsilence { id: String },
    /// Active silences.
    Silences,
}

/// `name=value` and friends, as the API's matcher objects.
fn matcher(s: &str) -> Result<Value> {
    for op in ["=~", "!~", "!=", "="] {
        if let Some((name, value)) = s.split_once(op) {
            return Ok(json!({"name": name.trim(), "op": op, "value": value}));
        }
    }
    bail!("--match `{s}`: expected name=value, name!=value, name=~regex or name!~regex")
}

fn labels_text(l: &Value) -> String {
    l.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| *k != "alertname" && *k != "instance_id")
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

pub async fn run(cmd: AlertCmd) -> Result<i32> {
    let c = Client::new(&cmd.server)?;
    match cmd.action {
        AlertAction::List { state, json } => {
            let path = match &state {
                Some(s) => format!("/api/v1/alerts?state={}", urlencode(s)),
                None => "/api/v1/alerts".into(),
            };
            let v: Value = c.call(Method::GET, &path, None).await?;
            if json {
                print_json(&v);
            } else {
                let rows: Vec<Vec<String>> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| {
                        vec![
                            a["state"].as_str().unwrap_or("").into(),
                            a["severity"].as_str().unwrap_or("").into(),
                            a["rule_name"].as_str().unwrap_or("").into(),
                            labels_text(&a["labels"]),
                            a["annotations"]["summary"].as_str().unwrap_or("").into(),
                        ]
                    })
                    .collect();
                print_table(&["STATE", "SEVERITY", "ALERT", "LABELS", "SUMMARY"], &rows);
            }
        }
        AlertAction::Rules { json } => {
            let v: Value = c.call(Method::GET, "/api/v1/alert-rules", None).await?;
            if json {
                print_json(&v);
            } else {
                let rows: Vec<Vec<String>> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        let s = &r["spec"];
                        let what = s["expr"].as_str().or(s["metric"].as_str()).unwrap_or("").to_string();
                        vec![
                            r["name"].as_str().unwrap_or("").into(),
                            s["kind"].as_str().unwrap_or("threshold").into(),
                            what,
                            s["for"].as_str().unwrap_or("0s").into(),
                            if r["enabled"] == true { "yes".into() } else { "no".into() },
                        ]
                    })
                    .collect();
                print_table(&["NAME", "KIND", "EXPRESSION", "FOR", "ENABLED"], &rows);
            }
        }
        AlertAction::AddRule { file } => {
            let text = if file == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {file}"))?
            };
            let spec: Value = serde_json::from_str(&text).with_context(|| format!("{file} is not JSON"))?;
            let r: Value = c.call(Method::POST, "/api/v1/alert-rules", Some(spec)).await?;
            println!("added rule {} ({})", r["name"].as_str().unwrap_or(""), r["id"].as_str().unwrap_or(""));
        }
        AlertAction::Silence { matchers, duration, comment } => {
            let ms = matchers.iter().map(|m| matcher(m)).collect::<Result<Vec<_>>>()?;
            let r: Value = c.call(Method::POST, "/api/v1/silences", Some(json!({"matchers": ms, "duration": duration, "comment": comment}))).await?;
            println!("silence {} until {}", r["id"].as_str().unwrap_or(""), r["ends_at"]);
        }
        AlertAction::Unsilence { id } => {
            c.call_empty(Method::DELETE, &format!("/api/v1/silences/{}", urlencode(&id))).await?;
            println!("silence {id} ended");
        }
        AlertAction::Silences => {
            let v: Value = c.call(Method::GET, "/api/v1/silences", None).await?;
            print_json(&v);
        }
    }
    Ok(0)
}

#[derive(Debug, Args)]
pub struct MetricsCmd {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub action: MetricsAction,
}

#[derive(Debug, Subcommand)]
pub enum MetricsAction {
    /// Evaluate PromQL: now, or over `--range` with a small chart per series.
    Query {
        expr: String,
        /// How far back, e.g. 1h (a range query ending now).
        #[arg(long)]
        range: Option<String>,
        /// Resolution of a range query (default: range / 60).
        #[arg(long)]
        step: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// One line of block characters scaled between the series' min and max.
pub fn sparkline(values: &[f64]) -> String {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (lo, hi) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    values
        .iter()
        .map(|v| {
            if !v.is_finite() {
                ' '
            } else if hi <= lo {
                BLOCKS[3]
            } else {
                BLOCKS[(((v - lo) / (hi - lo)) * 7.0).round().clamp(0.0, 7.0) as usize]
            }
        })
        .collect()
}

pub async fn run_metrics(cmd: MetricsCmd) -> Result<i32> {
    let c = Client::new(&cmd.server)?;
    let MetricsAction::Query { expr, range, step, json } = cmd.action;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs_f64();
    let q = urlencode(&expr);
    let v: Value = match &range {
        None => c.call(Method::GET, &format!("/api/v1/query?query={q}&time={now}"), None).await?,
        Some(r) => {
            let secs = humantime::parse_duration(r).with_context(|| format!("--range `{r}` is not a duration like 1h"))?.as_secs_f64();
            let step = match &step {
                Some(s) => humantime::parse_duration(s).with_context(|| format!("--step `{s}` is not a duration like 1m"))?.as_secs_f64(),
                None => (secs / 60.0).max(1.0),
            };
            c.call(Method::GET, &format!("/api/v1/query_range?query={q}&start={}&end={now}&step={step}", now - secs), None).await?
        }
    };
    let data = &v["data"];
    if json {
        print_json(data);
        return Ok(0);
    }
    let result = data["result"].as_array().cloned().unwrap_or_default();
    match data["resultType"].as_str() {
        Some("scalar") => println!("{}", data["result"][1].as_str().unwrap_or("")),
        Some("matrix") => {
            for s in &result {
                let vals: Vec<f64> = s["values"].as_array().into_iter().flatten().filter_map(|p| p[1].as_str()?.parse().ok()).collect();
                let last = vals.last().copied().unwrap_or(f64::NAN);
                let (lo, hi) = vals.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
                println!("{}", metric_text(&s["metric"]));
                println!("  {}  min {lo} max {hi} last {last}", sparkline(&vals));
            }
        }
        _ => {
            let rows: Vec<Vec<String>> = result.iter().map(|s| vec![metric_text(&s["metric"]), s["value"][1].as_str().unwrap_or("").to_string()]).collect();
            print_table(&["SERIES", "VALUE"], &rows);
        }
    }
    Ok(0)
}

fn metric_text(m: &Value) -> String {
    let name = m["__name__"].as_str().unwrap_or("");
    let labels: Vec<String> =
        m.as_object().into_iter().flatten().filter(|(k, _)| *k != "__name__").map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or(""))).collect();
    format!("{name}{{{}}}", labels.join(","))
}

#[cfg(test)]
mod tests {
    #[test]
    fn matchers_and_sparklines() {
        assert_eq!(super::matcher("instance=~db.*").unwrap(), serde_json::json!({"name": "instance", "op": "=~", "value": "db.*"}));
        assert_eq!(super::matcher("severity!=info").unwrap()["op"], "!=");
        assert!(super::matcher("nothing").is_err());
        assert_eq!(super::sparkline(&[0.0, 1.0, 2.0, 7.0]), "▁▂▃█");
        assert_eq!(super::sparkline(&[5.0, 5.0]), "▄▄");
    }
}
