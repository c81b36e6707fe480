use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use sluice_core::config::key_path;
use sluice_core::{ConfigError, Secret};
use sluice_pipeline::Sink;

use super::encode::Format;
use crate::component::{Accepts, Endpoint, SinkContext, SinkSpec};
use crate::scope::Scope;
use crate::sinks::message::Payload;
use sluice_core::calendar::Calendar;

/// `[sinks.NAME]` with `type = "file_drop"`: period files with manifests, optionally uploaded by FTP or
/// SFTP (docs/sync.md, "File drops").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDropSinkConfig {
    /// The local folder for the files (kept as the local copy). In a managed pipeline: a relative name
    /// inside the pipeline's folder.
    pub dir: String,
    /// `csv` (default; header line, RFC 4180) or `jsonl`.
    #[serde(default)]
    pub format: Format,
    /// JSON Lines only: `envelope` (default: op, before, after, position, commit time) or `row`.
    #[serde(default)]
    pub payload: Payload,
    /// CSV only: lead each row with `_op` and `_commit_time` (default true).
    #[serde(default = "yes")]
    pub meta_columns: bool,
    /// Compress each file with gzip (`.gz`).
    #[serde(default)]
    pub gzip: bool,
    /// Length of a period, dividing a day (`15m`, `1h`, `1d`; default `1h`). Or `cron`.
    #[serde(default, with = "humantime_serde::option")]
    pub period: Option<Duration>,
    /// Periods between the fire times of a cron schedule (`0 */6 * * *`), instead of `period`.
    pub cron: Option<String>,
    /// The IANA time zone periods are counted and named in (default `UTC`).
    #[serde(default = "utc")]
    pub time_zone: String,
    /// How long after a period ends rows committed in it are still put in it (default `1m`). Later rows go to
    /// the next open period and are counted as `late_rows` in its manifest.
    #[serde(default = "default_grace", with = "humantime_serde")]
    pub grace: Duration,
    /// File names without extension: `{db}`, `{table}` and `{period}` (default `{db}.{table}_{period}`).
    #[serde(default = "default_name")]
    pub name: String,
    /// The manifest's name: `{period}`, ending in `.json` (default `manifest_{period}.json`).
    #[serde(default = "default_manifest")]
    pub manifest: String,
    /// How long closed (and uploaded) periods stay in `dir` (default `7d`).
    #[serde(default = "default_keep", with = "humantime_serde")]
    pub keep: Duration,
    pub upload: Option<UploadConfig>,
}

/// `[sinks.NAME.upload]`: the third party's server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadConfig {
    /// `ftp://user@host[:21]/folder` or `sftp://user@host[:22]/folder`; the folder is relative to the login
    /// folder (`//abs/path` for an absolute one) and must exist.
    pub url: String,
    /// FTP password (a secret: never logged).
    pub password: Option<Secret<String>>,
    /// SFTP: a file holding the private key (OpenSSH format, unencrypted). In a managed pipeline: a name
    /// inside the pipeline's folder; use `private_key` with an offered variable instead.
    pub key_file: Option<String>,
    /// SFTP: the private key itself, e.g. `"${DROP_KEY}"` (a secret).
    pub private_key: Option<Secret<String>>,
    /// SFTP: the server's host key fingerprint as `ssh-keygen -lf` prints it (`SHA256:…`); any other key
    /// is refused.
    pub host_key: Option<String>,
    /// Time limit of a connection and of each step (default `30s`; a transfer gets a millisecond per KiB more).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn yes() -> bool {
    true
}
fn utc() -> String {
    "UTC".into()
}
fn default_grace() -> Duration {
    Duration::from_secs(60)
}
fn default_name() -> String {
    "{db}.{table}_{period}".into()
}
fn default_manifest() -> String {
    "manifest_{period}.json".into()
}
fn default_keep() -> Duration {
    Duration::from_secs(7 * 86_400)
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl FileDropSinkConfig {
    pub(super) fn calendar(&self) -> Result<Calendar, (&'static str, String)> {
        match (&self.period, &self.cron) {
            (Some(_), Some(_)) => Err(("cron", "set `period` or `cron`, not both".into())),
            (_, Some(c)) => Calendar::cron(c, &self.time_zone).map_err(|e| if e.contains("time zone") { ("time_zone", e) } else { ("cron", e) }),
            (p, None) => Calendar::every(p.unwrap_or(Duration::from_secs(3600)), &self.time_zone)
                .map_err(|e| if e.contains("time zone") { ("time_zone", e) } else { ("period", e) }),
        }
    }
}

impl UploadConfig {
    /// (scheme, user, host, port, folder).
    pub(super) fn parts(&self) -> Result<(String, String, String, u16, String), String> {
        let u = url::Url::parse(&self.url).map_err(|e| format!("not a URL: {e}"))?;
        let port = match u.scheme() {
            "ftp" => 21,
            "sftp" => 22,
            other => return Err(format!("`{other}://` is not an upload target (use ftp:// or sftp://)")),
        };
        let host = u.host_str().filter(|h| !h.is_empty()).ok_or("names no host")?.to_string();
        if u.username().is_empty() {
            return Err("names no user (`sftp://user@host/folder`)".into());
        }
        let user = percent_decode(u.username());
        let path = percent_decode(u.path());
        let dir = path.strip_prefix('/').unwrap_or(&path).to_string();
        Ok((u.scheme().to_string(), user, host, u.port().unwrap_or(port), dir))
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

impl SinkSpec for FileDropSinkConfig {
    fn validate(&self, at: &str, scope: &Scope, errors: &mut Vec<ConfigError>) {
        if let Err(e) = scope.file(&self.dir) {
            errors.push(ConfigError::new(key_path(at, "dir"), e));
        }
        if let Err((key, e)) = self.calendar() {
            errors.push(ConfigError::new(key_path(at, key), e));
        }
        check_template(&self.name, &["{db}", "{table}", "{period}"], &["{table}", "{period}"], "")
            .map_err(|e| errors.push(ConfigError::new(key_path(at, "name"), e)))
            .ok();
        check_template(&self.manifest, &["{period}"], &["{period}"], ".json").map_err(|e| errors.push(ConfigError::new(key_path(at, "manifest"), e))).ok();
        if self.payload != Payload::Envelope && self.format != Format::Jsonl {
            errors.push(ConfigError::new(key_path(at, "payload"), "`payload` is for `format = \"jsonl\"`"));
        }
        let Some(up) = &self.upload else { return };
        let at = key_path(at, "upload");
        match up.parts() {
            Err(e) => errors.push(ConfigError::new(key_path(&at, "url"), e)),
            Ok((scheme, ..)) if scheme == "ftp" => {
                let in_url = url::Url::parse(&up.url).ok().and_then(|u| u.password().map(str::to_string)).is_some();
                if up.password.is_none() && !in_url {
                    errors.push(ConfigError::new(key_path(&at, "password"), "FTP needs a password (`password` or in the URL)"));
                }
                for (key, set) in [("key_file", up.key_file.is_some()), ("private_key", up.private_key.is_some()), ("host_key", up.host_key.is_some())] {
                    if set {
                        errors.push(ConfigError::new(key_path(&at, key), "is for sftp:// uploads"));
                    }
                }
            }
            Ok(_) => {
                match (&up.key_file, &up.private_key) {
                    (None, None) => errors.push(ConfigError::new(key_path(&at, "key_file"), "SFTP needs a key: `key_file` or `private_key`")),
                    (Some(_), Some(_)) => errors.push(ConfigError::new(key_path(&at, "private_key"), "set `key_file` or `private_key`, not both")),
                    (Some(f), None) => {
                        if let Err(e) = scope.file(f) {
                            errors.push(ConfigError::new(key_path(&at, "key_file"), e));
                        }
                    }
                    (None, Some(_)) => {}
                }
                match &up.host_key {
                    None => errors.push(ConfigError::new(
                        key_path(&at, "host_key"),
                        "SFTP needs the server's host key fingerprint (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints `SHA256:…`)",
                    )),
                    Some(k) if !k.starts_with("SHA256:") || k.len() < 20 => {
                        errors.push(ConfigError::new(key_path(&at, "host_key"), format!("`{k}` is not a SHA256 fingerprint (`SHA256:…`)")))
                    }
                    Some(_) => {}
                }
                if up.password.is_some() {
                    errors.push(ConfigError::new(key_path(&at, "password"), "SFTP authenticates with a key, not a password"));
                }
            }
        }
    }

    fn accepts(&self) -> Accepts {
        Accepts::Changes
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        self.upload.as_ref().and_then(|u| u.parts().ok()).map(|(_, _, host, port, _)| Endpoint { key: "upload.url", host, port }).into_iter().collect()
    }

    fn build<'a>(self: Box<Self>, cx: &'a SinkContext<'a>) -> BoxFuture<'a, Result<Box<dyn Sink>, String>> {
        Box::pin(async move { Ok(Box::new(super::FileDropSink::new(*self, cx).await?) as Box<dyn Sink>) })
    }
}

/// A name template: only `allowed` placeholders, every `required` one, no path, ends with `suffix`.
fn check_template(t: &str, allowed: &[&str], required: &[&str], suffix: &str) -> Result<(), String> {
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').ok_or_else(|| format!("`{t}` has an unclosed `{{`"))?;
        let ph = &rest[open..open + close + 1];
        if !allowed.contains(&ph) {
            return Err(format!("`{ph}` is not one of {}", allowed.join(", ")));
        }
        rest = &rest[open + close + 1..];
    }
    if let Some(missing) = required.iter().find(|r| !t.contains(**r)) {
        return Err(format!("`{t}` lacks {missing}: two periods or tables would share a name"));
    }
    if t.contains('/') || t.contains('\\') || t.starts_with('.') {
        return Err(format!("`{t}` is a file name: no `/`, no leading `.`"));
    }
    if !t.ends_with(suffix) {
        return Err(format!("`{t}` must end in `{suffix}`"));
    }
    Ok(())
}
