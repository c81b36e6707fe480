//! The `sluice` binary: command-line parsing and wiring only.

mod client;
mod commands;
mod config;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::{FileConfig, LogFormat, Overrides};

#[derive(Debug, Parser)]
#[command(name = "sluice", version, about = "Govern database operations and move database changes in real time.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane: API on an embedded SQLite store (or PostgreSQL with --store).
    Serve(ServeArgs),
    /// Review SQL files (MySQL/MariaDB or PostgreSQL); exit 0 clean, 1 warnings, 2 errors, 3 usage/I-O error.
    Review(commands::review::ReviewCmd),
    /// Run a pipeline file (the data plane alone; checkpoints beside the file).
    Run(commands::run::RunCmd),
    /// Manage pipelines run by a server.
    Pipeline(commands::pipeline::PipelineCmd),
    /// Manage registered database instances on a running server.
    Instance(commands::instance::InstanceCmd),
    /// Change tickets on a running server: create, review, approve, reject, cancel.
    Ticket(commands::ticket::TicketCmd),
    /// Projects: their members and instances (admin).
    Project(commands::ticket::ProjectCmd),
    /// Approval flows (admin).
    Flow(commands::ticket::FlowCmd),
    /// Manage users on a running server (admin).
    User(commands::user::UserCmd),
    /// Manage API tokens on a running server (admin).
    Token(commands::user::TokenCmd),
    /// Inspect and verify the audit log.
    Audit(commands::audit::AuditCmd),
    /// Backups: repositories, policies, the catalog, backing up and verifying now, key export, extraction.
    Backup(commands::backup::BackupCmd),
    /// Alerts, alert rules and silences on a running server.
    Alert(commands::alert::AlertCmd),
    /// Query the time-series store with PromQL (`metrics query 'EXPR' [--range 1h]`, a chart per series).
    Metrics(commands::alert::MetricsCmd),
    /// Run the anomaly detector online over a `timestamp,value` CSV; prints `timestamp,value,anomaly_score,label`.
    Detect(DetectArgs),
    /// PostgreSQL's archive_command: seal a WAL file into a backup repository (on the database host).
    WalPush(commands::wal::WalPushCmd),
    /// PostgreSQL's restore_command: bring a WAL file back from a backup repository (exit 1: not there).
    WalGet(commands::wal::WalGetCmd),
}

#[derive(Debug, clap::Args)]
struct DetectArgs {
    /// The series: a header line, then `timestamp,value` per line (NAB's format).
    file: PathBuf,
    /// Points after a raise during which the same incident does not raise again.
    #[arg(long)]
    refractory: Option<usize>,
    /// Points over which the value and change ranges are kept.
    #[arg(long)]
    history: Option<usize>,
    /// Points before the first raise.
    #[arg(long)]
    warmup: Option<usize>,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// A sluice.toml with server settings; flags override it.
    #[arg(long, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the SQLite store and the master key [default: ./sluice-data].
    #[arg(long, env = "SLUICE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7700].
    #[arg(long, env = "SLUICE_LISTEN")]
    listen: Option<String>,
    /// postgres://… to keep the store in PostgreSQL (several servers may share it).
    #[arg(long, env = "SLUICE_STORE", hide_env_values = true)]
    store: Option<String>,
    /// Log format on stderr.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

/// Rust ignores SIGPIPE, so `sluice review --list-rules | head` would make `println!` panic
/// on the closed pipe. A command-line tool should end quietly there, as `cat` does.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called in main before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_tracing(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

// mimalloc: the system allocator's arena locks showed up as ~10% of a full-row JSON pipeline's time on
// two cores (perf, bench/cdc.sh); mimalloc removed them. Built without transparent huge pages (`no_thp`):
// with THP its arenas were backed by 2 MiB pages, resident whole however little of each was used (92 MiB
// of huge pages in a 266 MiB collector, bench/collection.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that only print: a closed stdout (`| head`) ends them quietly. Not for those that write
    // into pipes and sockets of their own — the server, pipelines, backups and restores feeding a child
    // process, the WAL commands: there a reader that goes away must be an error to handle, not a signal
    // that kills the process (a restore's `mariadb` exiting early would otherwise take the server down).
    if !matches!(cli.command, Command::Serve(_) | Command::Run(_) | Command::Backup(_) | Command::WalPush(_) | Command::WalGet(_)) {
        restore_default_sigpipe();
    }
    // Review is synchronous and pure: no runtime.
    if let Command::Review(cmd) = cli.command {
        return ExitCode::from(commands::review::run(cmd) as u8);
    }
    // So is the detector.
    if let Command::Detect(args) = &cli.command {
        let text = match std::fs::read_to_string(&args.file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", args.file.display());
                return ExitCode::from(2);
            }
        };
        let d = sluice_control::monitor::anomaly::Params::default();
        let params = sluice_control::monitor::anomaly::Params {
            refractory: args.refractory.unwrap_or(d.refractory),
            history: args.history.unwrap_or(d.history),
            warmup: args.warmup.unwrap_or(d.warmup),
            ..d
        };
        return match sluice_control::monitor::detect_csv(&text, params) {
            Ok(out) => {
                print!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}: {e}", args.file.display());
                ExitCode::from(2)
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve(args) => {
            let (file, origin) = match &args.config {
                Some(p) => (config::load(p)?, p.clone()),
                None => (FileConfig::default(), PathBuf::from("(command line)")),
            };
            let settings = file.resolve(Overrides { listen: args.listen, data_dir: args.data_dir, store: args.store, log_format: args.log_format }, &origin)?;
            init_tracing(settings.log_format, &settings.log_level);
            serve::run(settings).await?;
            Ok(0)
        }
        Command::Review(_) | Command::Detect(_) => unreachable!("handled before the runtime starts"),
        Command::Run(cmd) => {
            init_tracing(LogFormat::Text, "info");
            commands::run::run(cmd).await
        }
        Command::Instance(cmd) => commands::instance::run(cmd).await,
        Command::Pipeline(cmd) => commands::pipeline::run(cmd).await,
        Command::Ticket(cmd) => commands::ticket::run_ticket(cmd).await,
        Command::Project(cmd) => commands::ticket::run_project(cmd).await,
        Command::Flow(cmd) => commands::ticket::run_flow(cmd).await,
        Command::User(cmd) => commands::user::run_user(cmd).await,
        Command::Token(cmd) => commands::user::run_token(cmd).await,
        Command::Audit(cmd) => commands::audit::run(cmd).await,
        Command::Backup(cmd) => commands::backup::run(cmd).await,
        Command::Alert(cmd) => commands::alert::run(cmd).await,
        Command::Metrics(cmd) => commands::alert::run_metrics(cmd).await,
        Command::WalPush(cmd) => commands::wal::push(cmd).await,
        Command::WalGet(cmd) => commands::wal::get(cmd).await,
    }
}
