//! `sluice wal-push` and `sluice wal-get`: PostgreSQL's `archive_command` and `restore_command`, on the
//! database host, with only the repository's configuration and an exported key file (no server, no
//! store). Exit codes are PostgreSQL's contract: 0 stored (or fetched); `wal-get` 1 when the archive does
//! not hold the file; 2 on any error (PostgreSQL retries an archive command that fails).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Where the archive is and how to open it.
#[derive(Debug, clap::Args)]
pub struct ArchiveArgs {
    /// The repository's configuration (JSON or TOML, as registered).
    #[arg(long)]
    repository_config: PathBuf,
    /// A key file from `sluice backup key export` (the newest key seals; any opens).
    #[arg(long)]
    key_file: PathBuf,
    /// The archive's prefix in the repository: `wal/<policy id>/<instance id>` for a policy's archive
    /// (`GET /api/v1/backup/archives` lists them).
    #[arg(long)]
    prefix: String,
}

#[derive(Debug, clap::Args)]
pub struct WalPushCmd {
    #[command(flatten)]
    archive: ArchiveArgs,
    /// The file to archive (`%p`).
    path: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct WalGetCmd {
    #[command(flatten)]
    archive: ArchiveArgs,
    /// The file PostgreSQL asks for (`%f`).
    name: String,
    /// Where to write it (`%p`).
    dest: PathBuf,
}

fn open(a: &ArchiveArgs) -> Result<(sluice_backup::repository::Repository, Vec<sluice_backup::DataKey>, String)> {
    let cfg: sluice_backup::repository::RepositoryConfig = serde_json::from_value(super::backup::read_doc(&a.repository_config)?)
        .with_context(|| format!("{} is not a repository configuration", a.repository_config.display()))?;
    let repo = sluice_backup::repository::Repository::new(&cfg).map_err(anyhow::Error::msg)?;
    let keys = super::backup::keys_newest_first(&a.key_file)?;
    let prefix = a.prefix.trim_matches('/').to_string();
    if prefix.is_empty() || prefix.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
        anyhow::bail!("--prefix `{}` is not a repository folder like wal/<policy>/<instance>", a.prefix);
    }
    Ok((repo, keys, prefix))
}

pub async fn push(cmd: WalPushCmd) -> Result<i32> {
    let (repo, keys, prefix) = open(&cmd.archive)?;
    match sluice_backup::wal_command::push(&repo, &keys, &prefix, &cmd.path).await.map_err(anyhow::Error::msg)? {
        sluice_backup::wal_command::Pushed::Stored => eprintln!("stored {} in {prefix}", name_of(&cmd.path)),
        sluice_backup::wal_command::Pushed::AlreadyThere => eprintln!("{} is in {prefix} already, with the same content", name_of(&cmd.path)),
    }
    Ok(0)
}

pub async fn get(cmd: WalGetCmd) -> Result<i32> {
    let (repo, keys, prefix) = open(&cmd.archive)?;
    if sluice_backup::wal_command::get(&repo, &keys, &prefix, &cmd.name, &cmd.dest).await.map_err(anyhow::Error::msg)? {
        Ok(0)
    } else {
        eprintln!("{} is not in {prefix}", cmd.name);
        Ok(1)
    }
}

fn name_of(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
