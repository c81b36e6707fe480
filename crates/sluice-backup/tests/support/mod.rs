//! The repositories every repository test runs on, each fresh and private to the test.

use sluice_backup::repository::{Repository, RepositoryConfig};
use sluice_core::Secret;
use sluice_testkit::{Service, service, sftp_host_key, sftp_key, unique_name};

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Local,
    S3,
    Sftp,
}

/// A fresh repository of `kind`, and the folder that holds a local one.
pub fn repository(kind: Kind) -> (Repository, Option<tempfile::TempDir>) {
    match kind {
        Kind::Local => {
            let dir = tempfile::tempdir().unwrap();
            (Repository::new(&RepositoryConfig::Local { path: dir.path().to_path_buf() }).unwrap(), Some(dir))
        }
        Kind::S3 => {
            let u = url::Url::parse(&service(Service::S3)).unwrap();
            let config = RepositoryConfig::S3 {
                bucket: u.path().trim_matches('/').to_string(),
                prefix: unique_name("repo"),
                region: "garage".into(),
                endpoint: Some(format!("http://{}:{}", u.host_str().unwrap(), u.port().unwrap())),
                access_key_id: u.username().to_string(),
                secret_access_key: Secret::new(u.password().unwrap().to_string()),
            };
            (Repository::new(&config).unwrap(), None)
        }
        Kind::Sftp => {
            let u = url::Url::parse(&service(Service::Sftp)).unwrap();
            let config = RepositoryConfig::Sftp {
                host: u.host_str().unwrap().to_string(),
                port: u.port().unwrap(),
                user: u.username().to_string(),
                private_key: Secret::new(std::fs::read_to_string(sftp_key()).unwrap()),
                host_key: sftp_host_key(),
                dir: format!("{}/{}", u.path().trim_matches('/'), unique_name("repo")),
            };
            (Repository::new(&config).unwrap(), None)
        }
    }
}

/// Flips one bit of object `path`, through the repository itself (so it works on every kind).
pub async fn damage(repo: &Repository, path: &str, at_from_end: usize) {
    let mut bytes = repo.get(path).await.unwrap().unwrap();
    let at = bytes.len() - at_from_end;
    bytes[at] ^= 1;
    repo.put(path, &bytes).await.unwrap();
}

/// One test function (`async fn NAME(kind: Kind)`) run on every kind of repository, as `NAME::local`,
/// `NAME::s3` and `NAME::sftp`.
#[macro_export]
macro_rules! on_every_repository {
    ($name:ident) => {
        mod $name {
            use $crate::support::Kind;
            #[tokio::test(flavor = "multi_thread")]
            async fn local() {
                super::$name(Kind::Local).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn s3() {
                super::$name(Kind::S3).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn sftp() {
                super::$name(Kind::Sftp).await
            }
        }
    };
}

/// A log archiver running in the background for a test.
pub struct Archiving<S> {
    pub status: tokio::sync::watch::Receiver<S>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl<S> Archiving<S> {
    /// Waits (a minute at most) until `done(status)`.
    pub async fn wait_until(&mut self, what: &str, done: impl Fn(&S) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !done(&self.status.borrow_and_update()) {
            assert!(std::time::Instant::now() < deadline, "{what} was not archived");
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.status.changed()).await;
        }
    }

    /// Stops the archiver; it must have ended cleanly.
    pub async fn finish(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Archives `server`'s binlogs under `prefix` every second (partials included).
pub fn archive_binlogs(
    server: sluice_backup::mariadb_dump::Server,
    repo: &Repository,
    key: &sluice_backup::DataKey,
    prefix: &str,
    spool: &std::path::Path,
    server_id: u32,
) -> Archiving<sluice_backup::binlog_archive::ArchiveStatus> {
    let archiver = sluice_backup::binlog_archive::BinlogArchiver {
        server,
        repo: repo.clone(),
        key: key.clone(),
        prefix: prefix.to_string(),
        spool: spool.to_path_buf(),
        server_id,
        start_file: None,
        partial_every: std::time::Duration::from_secs(1),
    };
    let (tx, status) = tokio::sync::watch::channel(Default::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    Archiving { status, stop, task: tokio::spawn(async move { archiver.run(s, tx).await }) }
}

/// Archives `db`'s WAL under `prefix` through replication slot `slot`, partials every second.
pub fn archive_wal(
    db: &sluice_backup::pg_dump::Database,
    repo: &Repository,
    key: &sluice_backup::DataKey,
    prefix: &str,
    spool: &std::path::Path,
    slot: &str,
) -> Archiving<sluice_backup::pg_physical::ArchiveStatus> {
    let archiver = sluice_backup::pg_physical::WalArchiver {
        db: db.clone(),
        repo: repo.clone(),
        key: key.clone(),
        prefix: prefix.to_string(),
        spool: spool.to_path_buf(),
        slot: slot.to_string(),
        partial_every: std::time::Duration::from_secs(1),
    };
    let (tx, status) = tokio::sync::watch::channel(Default::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    Archiving { status, stop, task: tokio::spawn(async move { archiver.run(s, tx).await }) }
}
