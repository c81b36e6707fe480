//! `sluice review FILE… --engine mysql|mariadb|postgres [--format text|json|sarif]` and `--list-rules`.
//! Exit code: 0 clean or info only, 1 warnings, 2 errors, 3 usage or I/O error.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use sluice_review::{Level, SqlDialect, report};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
}

#[derive(Debug, Args)]
pub struct ReviewCmd {
    /// SQL files; `-` reads standard input.
    pub files: Vec<PathBuf>,
    /// mysql, mariadb or postgres.
    #[arg(long)]
    pub engine: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// A policy file (rule levels, rules turned off, parameters; see docs/review.md).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// The environment whose policy applies (`prod` is stricter by default, `dev` quieter).
    #[arg(long = "env")]
    pub environment: Option<String>,
    /// A live database (read-only) for the schema-aware rules: mysql://user:pw@host:port/db or postgres://…;
    /// add `?tls=require` or `?tls=verify-full` for TLS.
    #[arg(long, env = "SLUICE_REVIEW_SCHEMA_FROM", hide_env_values = true)]
    pub schema_from: Option<String>,
    /// List the rules (with --format json for machine-readable output) and exit.
    #[arg(long)]
    pub list_rules: bool,
}

/// Runs the command and returns the exit code.
pub fn run(cmd: ReviewCmd) -> i32 {
    if cmd.list_rules {
        list_rules(cmd.format);
        return 0;
    }
    let Some(engine) = cmd.engine.as_deref() else {
        eprintln!("error: --engine is required (mysql, mariadb or postgres)");
        return 3;
    };
    let Some(dialect) = SqlDialect::parse(engine) else {
        eprintln!("error: --engine: `{engine}` is not mysql, mariadb or postgres");
        return 3;
    };
    let policy = match &cmd.policy {
        None => sluice_review::Policy::default(),
        Some(p) => match std::fs::read_to_string(p) {
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", p.display());
                return 3;
            }
            Ok(text) => match sluice_review::Policy::parse(&text) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {}: {e}", p.display());
                    return 3;
                }
            },
        },
    };
    let settings = policy.settings(cmd.environment.as_deref());
    if cmd.files.is_empty() {
        eprintln!("error: name at least one SQL file, or `-` for standard input");
        return 3;
    }
    let mut worst: Option<Level> = None;
    let mut sarif_files = Vec::new();
    let mut json_files = Vec::new();
    for path in &cmd.files {
        let (name, sql) = if path.as_os_str() == "-" {
            let mut s = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut s) {
                eprintln!("error: cannot read standard input: {e}");
                return 3;
            }
            ("<stdin>".to_string(), s)
        } else {
            match std::fs::read(path) {
                Ok(bytes) => (path.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()),
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", path.display());
                    return 3;
                }
            }
        };
        let live = match cmd.schema_from.as_deref().map(sluice_engines::ConnectSpec::from_url) {
            None => None,
            Some(Ok(spec)) if spec.engine == sluice_core::Engine::Redis => {
                eprintln!("error: --schema-from: Redis has no schema to review SQL against; give a mysql:// or postgres:// URL");
                return 3;
            }
            Some(Ok(spec)) => Some(spec),
            Some(Err(e)) => {
                eprintln!("error: --schema-from: {e}");
                return 3;
            }
        };
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return 3;
            }
        };
        let r = match rt.block_on(sluice_control::review::run(sql.clone(), dialect, settings.clone(), live.as_ref())) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: --schema-from: {e}");
                return 3;
            }
        };
        worst = worst.max(r.worst());
        match cmd.format {
            Format::Text => print!("{}", report::text(&name, &sql, &r.findings)),
            Format::Json => json_files.push(report::json(&name, r.statements, &r.findings)),
            Format::Sarif => sarif_files.push((name, r.findings)),
        }
    }
    match cmd.format {
        Format::Text => {}
        Format::Json => println!("{}", serde_json::Value::Array(json_files)),
        Format::Sarif => println!("{}", report::sarif(&sarif_files)),
    }
    match worst {
        Some(Level::Error) => 2,
        Some(Level::Warning) => 1,
        _ => 0,
    }
}

fn list_rules(format: Format) {
    let rules = sluice_review::rules::all_meta();
    match format {
        Format::Json | Format::Sarif => {
            let v: Vec<_> = rules.clone();
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Text => {
            for m in rules {
                let engines: Vec<&str> = m.engines.iter().map(|e| if *e == SqlDialect::MySql { "mysql" } else { "postgres" }).collect();
                println!("{:<34} {:<8} {:<15} {}", m.id, if m.opt_in { "opt-in" } else { m.level.as_str() }, engines.join(","), m.summary);
            }
        }
    }
}
