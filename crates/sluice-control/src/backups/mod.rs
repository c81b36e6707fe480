//! Backups governed by the control plane: repositories and policies (validated in [`spec`]), the worker
//! that schedules, runs, verifies and expires backups ([`worker`]), and what one backup or verification does
//! for each engine ([`run`]).

pub mod archive;
pub mod health;
pub mod restore;
pub mod run;
pub mod spec;
pub mod worker;

use std::net::IpAddr;

use sluice_backup::DataKey;
use sluice_backup::repository::{Repository, RepositoryConfig};
use sluice_core::egress::EgressPolicy;
use sluice_store::Store;

/// The host a repository connects to, if it is remote.
pub fn remote_host(config: &RepositoryConfig) -> Option<(String, u16)> {
    match config {
        RepositoryConfig::Local { .. } => None,
        RepositoryConfig::S3 { endpoint: Some(e), .. } => {
            let u = url::Url::parse(e).ok()?;
            Some((u.host_str()?.to_string(), u.port_or_known_default()?))
        }
        RepositoryConfig::S3 { region, .. } => Some((format!("s3.{region}.amazonaws.com"), 443)),
        RepositoryConfig::Sftp { host, port, .. } => Some((host.clone(), *port)),
    }
}

/// Checks a remote repository's host against the egress policy (resolving it now).
pub async fn check_egress(config: &RepositoryConfig, egress: &EgressPolicy) -> Result<(), String> {
    let Some((host, port)) = remote_host(config) else { return Ok(()) };
    let addrs: Vec<IpAddr> =
        tokio::net::lookup_host((host.as_str(), port)).await.map_err(|e| format!("cannot resolve `{host}`: {e}"))?.map(|a| a.ip()).collect();
    egress.check(&host, &addrs).map_err(|e| e.to_string())
}

/// A registered repository, opened (after the egress check).
pub async fn open_repository(store: &Store, repository_id: &str, egress: &EgressPolicy) -> Result<Repository, String> {
    let clear = store.repository_config(repository_id).await.map_err(|e| e.to_string())?;
    let config: RepositoryConfig =
        serde_json::from_str(clear.0.expose()).map_err(|e| format!("the stored configuration of repository {repository_id} is unreadable: {e}"))?;
    check_egress(&config, egress).await?;
    Repository::new(&config)
}

/// Key `key_id` of a repository.
pub async fn data_key(store: &Store, repository_id: &str, key_id: &str) -> Result<DataKey, String> {
    let k = store.backup_key(repository_id, key_id).await.map_err(|e| e.to_string())?;
    Ok(DataKey::from_bytes(*k.expose()))
}
