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
