//! What a pipeline's components may touch, decided by where its definition comes from (ARCHITECTURE §6).
//!
//! - A file the operator runs with `sluice run` is the operator's configuration: `${VAR}` reads the
//!   process environment, file paths are relative to the file's folder (or absolute), error messages may
//!   quote what a remote endpoint answered.
//! - A spec sent through the API (`POST /api/v1/pipelines`) is data from a caller who is not the operator:
//!   `${VAR}` sees only the variables an admin offers in `sluice.toml` (never Sluice's own), every file is a
//!   relative name under the pipeline's folder in the data dir, every outbound connection obeys the egress
//!   policy, and errors never quote a remote answer (or a pipeline could read internal services back
//!   through its status).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_core::confine::ConfinedDir;
use sluice_core::egress::EgressPolicy;

#[derive(Debug, Clone)]
pub struct Scope {
    pub files: FileScope,
    /// `None`: no policy (the operator's own file).
    pub egress: Option<Arc<EgressPolicy>>,
    /// Whether an error may quote the start of a remote endpoint's answer.
    pub quote_remote: bool,
    pub variables: Variables,
}

#[derive(Debug, Clone)]
pub enum FileScope {
    /// Relative paths resolve against this folder; absolute paths are taken as given.
    Free { base: PathBuf },
    /// Only relative names inside the folder.
    Confined(ConfinedDir),
}

#[derive(Debug, Clone)]
pub enum Variables {
    /// The process environment.
    Process,
    /// Only these (captured by the server at start from the variables an admin listed).
    Offered(Arc<BTreeMap<String, String>>),
}

impl Scope {
    /// A pipeline file at `file`, run by the operator.
    pub fn operator(file: &Path) -> Self {
        let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
        Self { files: FileScope::Free { base }, egress: None, quote_remote: true, variables: Variables::Process }
    }

    /// A spec sent through the API, confined to `dir`.
    pub fn managed(dir: PathBuf, offered: Arc<BTreeMap<String, String>>, egress: Arc<EgressPolicy>) -> Self {
        Self { files: FileScope::Confined(ConfinedDir::new(dir)), egress: Some(egress), quote_remote: false, variables: Variables::Offered(offered) }
    }

    /// Where the file `name` (a key's value) goes; the error says what is wrong with it, for that key.
    pub fn file(&self, name: &str) -> Result<PathBuf, String> {
        match &self.files {
            FileScope::Free { base } => {
                if name.is_empty() {
                    Err("is empty".into())
                } else {
                    Ok(base.join(name))
                }
            }
            FileScope::Confined(dir) => dir.resolve(name),
        }
    }

    /// A default file beside the definition (`sluice run`) or in the pipeline's folder (managed).
    pub fn default_file(&self, name: &str) -> PathBuf {
        match &self.files {
            FileScope::Free { base } => base.join(name),
            FileScope::Confined(dir) => dir.root().join(name),
        }
    }

    /// Before opening a file from [`file`](Self::file): in a confined scope, proves that no symbolic link
    /// leads it out of the folder.
    pub fn prepare_file(&self, path: &Path) -> Result<(), String> {
        match &self.files {
            FileScope::Free { .. } => Ok(()),
            FileScope::Confined(dir) => dir.prepare(path),
        }
    }

    pub fn confined(&self) -> bool {
        matches!(self.files, FileScope::Confined(_))
    }

    /// The value of `${name}` in this scope.
    pub fn variable(&self, name: &str) -> Option<String> {
        match &self.variables {
            Variables::Process => std::env::var(name).ok(),
            Variables::Offered(map) => map.get(name).cloned(),
        }
    }

    /// The address to connect to for `host`: resolved once, every address checked against the egress policy
    /// (when there is one), the first returned — so the connection goes where the check looked, never to a
    /// name resolved a second time.
    pub async fn allowed_address(&self, host: &str, port: u16) -> Result<IpAddr, String> {
        let addrs = resolve(host, port).await.map_err(|e| format!("cannot resolve `{host}`: {e}"))?;
        if let Some(policy) = &self.egress {
            policy.check(host, &addrs).map_err(|e| e.to_string())?;
        }
        addrs.first().copied().ok_or_else(|| format!("`{host}` has no address"))
    }

    /// Resolves `host` and applies the egress policy to every address (nothing to do without a policy).
    pub async fn check_egress(&self, host: &str, port: u16) -> Result<(), String> {
        let Some(policy) = &self.egress else { return Ok(()) };
        let addrs = resolve(host, port).await.map_err(|e| format!("cannot resolve `{host}`: {e}"))?;
        policy.check(host, &addrs).map_err(|e| e.to_string())
    }
}

pub(crate) async fn resolve(host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    Ok(tokio::net::lookup_host((host, port)).await?.map(|a| a.ip()).collect())
}

/// The host and port of a `scheme://user:pass@host:port/…` connection string, for the egress check.
pub fn url_host_port(url: &str, default_port: u16) -> Option<(String, u16)> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?.to_string();
    Some((host, parsed.port().unwrap_or(default_port)))
}
