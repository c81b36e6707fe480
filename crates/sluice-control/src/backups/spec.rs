//! What users send about backups, validated before anything is stored: repositories and policies. Errors
//! name the field (`full`, `retention.fulls`, `repository.path`), so a 400 says what to fix.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_backup::repository::RepositoryConfig;
use sluice_core::calendar::Calendar;

/// `POST /api/v1/backup/repositories`: a name and where backups go. Secrets in it (`secret_access_key`,
/// `private_key`) are stored encrypted and never shown again.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RepositorySpec {
    pub name: String,
    /// `{"type": "local", "path": "nightly"}` (relative to the data dir's `repositories/`, or absolute under a
    /// root the server's `[backup] local_roots` allows), `{"type": "s3", "bucket", "prefix", "region",
    /// "endpoint", "access_key_id", "secret_access_key"}` or `{"type": "sftp", "host", "port", "user",
    /// "private_key", "host_key", "dir"}`.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
}

/// Where a local repository may be: under the data dir's `repositories/`, or under an operator's root.
pub fn confine_local(path: &Path, data_dir: &Path, roots: &[PathBuf]) -> Result<PathBuf, String> {
    if path.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) {
        return Err(format!("`{}` may not contain `.` or `..`", path.display()));
    }
    if path.is_relative() {
        return Ok(data_dir.join("repositories").join(path));
    }
    if roots.iter().any(|r| path.starts_with(r)) {
        return Ok(path.to_path_buf());
    }
    let allowed: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    Err(format!(
        "`{}` is outside the folders the server allows for local repositories (a path relative to the data dir's repositories/, or under: {})",
        path.display(),
        if allowed.is_empty() { "none configured in [backup] local_roots".to_string() } else { allowed.join(", ") }
    ))
}

/// Parses a repository's configuration; `(field, message)` on error.
pub fn repository_config(value: &serde_json::Value, data_dir: &Path, roots: &[PathBuf]) -> Result<RepositoryConfig, (String, String)> {
    let config: RepositoryConfig = serde_path_to_error::deserialize(value.clone())
        .map_err(|e| (format!("config.{}", e.path()).trim_end_matches('.').to_string(), e.inner().to_string()))?;
    Ok(match config {
        RepositoryConfig::Local { path } => {
            RepositoryConfig::Local { path: confine_local(&path, data_dir, roots).map_err(|m| ("config.path".to_string(), m))? }
        }
        other => other,
    })
}

/// What a backup policy keeps.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Full backups kept per instance (newest first); at least 1.
    #[serde(default = "default_fulls")]
    pub fulls: u32,
    /// Every backup needed to restore to any moment of the last N days is kept, whatever `fulls` says.
    #[serde(default = "default_window")]
    pub recovery_window_days: u32,
}

fn default_fulls() -> u32 {
    7
}
fn default_window() -> u32 {
    7
}

impl Default for Retention {
    fn default() -> Self {
        Self { fulls: default_fulls(), recovery_window_days: default_window() }
    }
}

/// When backups are verified (restored into a scratch server and checked).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifySpec {
    /// Verify every backup as soon as it is done (default on).
    #[serde(default = "yes")]
    pub after_each: bool,
    /// Verify again on this schedule (cron, in the policy's zone): at each slot, the kept backup of each
    /// instance whose last verification is oldest.
    #[serde(default)]
    pub schedule: Option<String>,
}

impl Default for VerifySpec {
    fn default() -> Self {
        Self { after_each: true, schedule: None }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackupMethod {
    /// `mariadb-dump` / `pg_dump`: portable SQL, restorable by database or table.
    Logical,
    /// `mariadb-backup` / `pg_basebackup`: the data files.
    Physical,
    /// Redis: an RDB snapshot.
    Rdb,
}

impl BackupMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupMethod::Logical => "logical",
            BackupMethod::Physical => "physical",
            BackupMethod::Rdb => "rdb",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WalSource {
    #[default]
    Stream,
    ArchiveCommand,
}

/// `POST /api/v1/backup/policies`: what to back up, when, where, and for how long.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    pub name: String,
    /// One instance (id or name), or
    #[serde(default)]
    pub instance: Option<String>,
    /// every instance whose labels include all of these.
    #[serde(default)]
    pub selector: Option<BTreeMap<String, String>>,
    /// The repository (id or name).
    pub repository: String,
    /// `logical` (default for MariaDB/MySQL and PostgreSQL), `physical` (`mariadb-backup`, which runs on the
    /// database's host; PostgreSQL: `pg_basebackup`), or `rdb` (Redis, its only method).
    #[serde(default)]
    pub method: Option<BackupMethod>,
    /// Logical backups: the databases (default: the instance's `database`, for PostgreSQL; every
    /// non-system database, for MariaDB).
    #[serde(default)]
    pub databases: Vec<String>,
    /// When full backups run: cron, 5 fields (minute hour day month weekday) or 6 (seconds first).
    pub full: String,
    /// The IANA zone the schedule is read in (default UTC).
    #[serde(default = "utc")]
    pub timezone: String,
    /// Incremental backups between fulls (cron): each holds what changed since the newest backup of the
    /// chain (`method: physical`: MariaDB's `mariadb-backup --incremental`, PostgreSQL's changed files). A
    /// slot that a full also fills runs the full.
    #[serde(default)]
    pub incremental: Option<String>,
    /// Differential backups (cron): each holds what changed since the newest full (`method: physical`).
    /// Fewer links to restore than a long incremental chain, larger each. A slot a full or incremental
    /// also fills runs that one.
    #[serde(default)]
    pub differential: Option<String>,
    /// Continuous log archiving, for point-in-time restore: MariaDB binlogs (with `logical` or `physical`
    /// fulls), PostgreSQL WAL (with `physical` fulls).
    #[serde(default)]
    pub log_archiving: bool,
    /// PostgreSQL: how WAL reaches the archive — `stream` (default: Sluice runs `pg_receivewal` on a
    /// replication slot) or `archive_command` (the cluster pushes it itself with `sluice wal-push`; Sluice
    /// watches `pg_stat_archiver` so a failing command shows in the archive status and health events).
    #[serde(default)]
    pub wal_source: WalSource,
    #[serde(default)]
    pub retention: Retention,
    /// zstd level, 1–19 (default 3).
    #[serde(default = "default_level")]
    pub compression_level: i32,
    /// Always true: every backup is encrypted (AES-256-GCM). `false` is refused.
    #[serde(default = "yes")]
    pub encryption: bool,
    #[serde(default)]
    pub verify: VerifySpec,
    /// Alert when the newest verified backup of an instance is older than this (hours, default 26).
    #[serde(default = "default_max_age")]
    pub max_age_hours: u32,
}

fn utc() -> String {
    "UTC".into()
}
fn default_level() -> i32 {
    3
}
fn default_max_age() -> u32 {
    26
}

impl PolicySpec {
    /// Checks everything that does not need the store; `(field, message)` on error.
    pub fn validate(&self) -> Result<Calendar, (&'static str, String)> {
        if self.name.trim().is_empty() || self.name.len() > 100 {
            return Err(("name", "give a name of 1 to 100 characters".into()));
        }
        match (&self.instance, &self.selector) {
            (Some(_), Some(_)) => return Err(("selector", "give `instance` or `selector`, not both".into())),
            (None, None) => return Err(("instance", "name the instance to back up, or give a label `selector`".into())),
            (None, Some(s)) if s.is_empty() => return Err(("selector", "an empty selector would match every instance; list at least one label".into())),
            _ => {}
        }
        let calendar = Calendar::cron(&self.full, &self.timezone).map_err(|e| (if e.contains("time zone") { "timezone" } else { "full" }, e))?;
        for (field, cron) in [("incremental", &self.incremental), ("differential", &self.differential)] {
            if let Some(c) = cron {
                Calendar::cron(c, &self.timezone).map_err(|e| (field, e))?;
                if self.method != Some(BackupMethod::Physical) {
                    return Err((field, format!("{field} backups copy changed data files: they need `method: physical`")));
                }
            }
        }
        if self.wal_source == WalSource::ArchiveCommand && !self.log_archiving {
            return Err(("wal_source", "`archive_command` is how archived WAL arrives: it needs `log_archiving: true`".into()));
        }
        if let Some(v) = &self.verify.schedule {
            Calendar::cron(v, &self.timezone).map_err(|e| ("verify.schedule", e))?;
        }
        if self.retention.fulls == 0 {
            return Err(("retention.fulls", "keep at least 1 full backup".into()));
        }
        if !(1..=19).contains(&self.compression_level) {
            return Err(("compression_level", format!("{} is not a zstd level (1–19)", self.compression_level)));
        }
        if !self.encryption {
            return Err((
                "encryption",
                "backups are always encrypted; to restore without Sluice, export the key (`sluice backup key export`) and follow docs/backup.md".into(),
            ));
        }
        if self.max_age_hours == 0 {
            return Err(("max_age_hours", "give at least 1 hour".into()));
        }
        for (i, d) in self.databases.iter().enumerate() {
            if d.is_empty() || d.len() > 64 || d.contains(['`', '"', '\0', '/']) {
                return Err(("databases", format!("databases[{i}]: `{d}` is not a database name")));
            }
        }
        Ok(calendar)
    }

    /// When verifications run on their own schedule, if they do (the spec validated).
    pub fn verify_calendar(&self) -> Option<Calendar> {
        self.verify.schedule.as_ref().and_then(|c| Calendar::cron(c, &self.timezone).ok())
    }

    /// When incremental backups run, if they do (the spec validated).
    pub fn incremental_calendar(&self) -> Option<Calendar> {
        self.incremental.as_ref().and_then(|c| Calendar::cron(c, &self.timezone).ok())
    }

    /// When differential backups run, if they do (the spec validated).
    pub fn differential_calendar(&self) -> Option<Calendar> {
        self.differential.as_ref().and_then(|c| Calendar::cron(c, &self.timezone).ok())
    }

    /// Whether an instance's labels satisfy the selector.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.as_ref().is_some_and(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> PolicySpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn bad_fields_are_named() {
        let base = serde_json::json!({"name": "nightly", "instance": "db1", "repository": "r", "full": "0 3 * * *"});
        assert!(spec(base.clone()).validate().is_ok());
        let cases = [
            ("full", serde_json::json!("0 3 * *")),
            ("timezone", serde_json::json!("Mars/Olympus")),
            ("compression_level", serde_json::json!(25)),
            ("encryption", serde_json::json!(false)),
        ];
        for (field, value) in cases {
            let mut j = base.clone();
            j[field] = value;
            let (f, m) = spec(j).validate().unwrap_err();
            assert_eq!(f, field, "{m}");
        }
        let mut j = base.clone();
        j["selector"] = serde_json::json!({"env": "prod"});
        assert_eq!(spec(j).validate().unwrap_err().0, "selector");
        let mut j = base;
        j["retention"] = serde_json::json!({"fulls": 0});
        assert_eq!(spec(j).validate().unwrap_err().0, "retention.fulls");
    }

    #[test]
    fn local_repositories_stay_in_allowed_folders() {
        let data = Path::new("/var/lib/sluice");
        assert_eq!(confine_local(Path::new("nightly"), data, &[]).unwrap(), Path::new("/var/lib/sluice/repositories/nightly"));
        assert!(confine_local(Path::new("../../etc"), data, &[]).is_err());
        assert!(confine_local(Path::new("/etc/cron.d"), data, &[]).unwrap_err().contains("outside"));
        assert!(confine_local(Path::new("/srv/backups/a"), data, &[PathBuf::from("/srv/backups")]).is_ok());
        assert!(confine_local(Path::new("/srv/backups-evil"), data, &[PathBuf::from("/srv/backups")]).is_err());
    }
}
