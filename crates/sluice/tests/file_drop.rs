//! `sluice run` dropping period files with manifests on a real SFTP (OpenSSH) and FTP (vsftpd) server:
//! exactly once through `kill -9`, and through connections cut in the middle of a file.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sha2::Digest;
use sluice_testkit::{Service, drop_dir, fresh_mariadb_database, service, sftp_host_key, sftp_key, unique_name};

use crate::support::RunningPipeline;
use crate::sync::{orders_source_and_example, server_id, write_file, write_while_killing_twice};

/// A fresh folder inside the test servers' drop folder, owned by their user; its path on disk and its URL
/// path below the servers' `/drop`.
fn remote_folder(prefix: &str) -> (PathBuf, String) {
    let (root, user) = drop_dir();
    let name = unique_name(prefix);
    let dir = root.join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let ok = std::process::Command::new("chown").arg(format!("{user}:{user}")).arg(&dir).status().unwrap();
    assert!(ok.success(), "chown {}", dir.display());
    (dir, name)
}

/// Rows in a folder's manifests (of what has arrived so far).
fn manifest_rows(dir: &Path) -> i64 {
    manifests(dir).iter().map(|m| m["rows"].as_i64().unwrap()).sum()
}

fn manifests(dir: &Path) -> Vec<serde_json::Value> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
        .iter()
        .filter(|n| n.starts_with("manifest_") && n.ends_with(".json"))
        .filter_map(|n| serde_json::from_slice(&std::fs::read(dir.join(n)).ok()?).ok())
        .collect()
}

/// Rows the local side holds so far: open files (from the journal) and closed periods.
fn local_rows(dir: &Path) -> i64 {
    let open: i64 = std::fs::read(dir.join(".sluice/state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|j| j["parts"].as_array().map(|ps| ps.iter().map(|p| p["rows"].as_i64().unwrap_or(0)).sum()).unwrap_or(0))
        .unwrap_or(0);
    open + manifest_rows(dir)
}

/// Whether the local side holds no open file and no period waiting for upload.
fn settled(dir: &Path) -> bool {
    let open = std::fs::read(dir.join(".sluice/state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|j| j["parts"].as_array().is_some_and(|p| p.is_empty()));
    let queued = std::fs::read_dir(dir.join(".sluice/outbox")).map(|d| d.count()).unwrap_or(1);
    open && queued == 0
}

/// Checks a delivered folder against its manifests: every file listed is there with its size and SHA-256,
/// nothing else is (no temporary name left), and returns how often each `id` appears in the files' rows.
fn audit(dir: &Path) -> BTreeMap<i64, u32> {
    let mut listed = std::collections::BTreeSet::new();
    let mut ids = BTreeMap::new();
    for m in manifests(dir) {
        for f in m["files"].as_array().unwrap() {
            let name = f["name"].as_str().unwrap();
            let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name} is listed in a manifest but missing: {e}"));
            assert_eq!(bytes.len() as i64, f["bytes"].as_i64().unwrap(), "{name}: size");
            assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), f["sha256"].as_str().unwrap(), "{name}: SHA-256");
            let text = if name.ends_with(".gz") {
                let mut s = String::new();
                flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_string(&mut s).unwrap();
                s
            } else {
                String::from_utf8(bytes).unwrap()
            };
            let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
            let header: Vec<&str> = lines.next().unwrap().split(',').collect();
            let at = header.iter().position(|h| *h == "id").unwrap();
            let mut n = 0;
            for l in lines {
                *ids.entry(l.split(',').nth(at).unwrap().parse::<i64>().unwrap()).or_insert(0) += 1;
                n += 1;
            }
            assert_eq!(n, f["rows"].as_i64().unwrap(), "{name}: rows");
            listed.insert(name.to_string());
        }
    }
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name == ".sluice" {
            continue; // the local side's journal
        }
        assert!(name.starts_with("manifest_") || listed.contains(&name), "{name} is in the drop folder but in no manifest");
    }
    ids
}

async fn wait_rows(what: &str, dir: &Path, want: i64, within: Duration, p: &RunningPipeline) {
    let deadline = Instant::now() + within;
    loop {
        let n = manifest_rows(dir);
        if n >= want {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {n} of {want} rows after {within:?}:\n{}", p.log.lock().unwrap().join("\n"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hourly_files_to_sftp_example_delivers_each_row_once_through_two_kill_9() {
    let sftp = service(Service::Sftp);
    let (pool, db, dir, file) = orders_source_and_example("hourly-files-to-sftp.toml").await;
    let (remote, folder) = remote_folder("drop");
    let local = dir.path().join("drop");
    let env = [
        ("SLUICE_MYSQL_URL", service(Service::Mariadb)),
        ("SLUICE_SOURCE_DB", db.clone()),
        ("SLUICE_SERVER_ID", server_id(7).to_string()),
        ("SLUICE_DROP_DIR", local.display().to_string()),
        // Five-second periods stand in for hours: the same code, and kills land inside open periods.
        ("SLUICE_DROP_PERIOD", "5s".to_string()),
        ("SLUICE_DROP_GRACE", "1s".to_string()),
        ("SLUICE_SFTP_URL", format!("{sftp}/{folder}")),
        ("SLUICE_SFTP_KEY", sftp_key().display().to_string()),
        ("SLUICE_SFTP_HOST_KEY", sftp_host_key()),
    ];
    let rows = || {
        let local = local.clone();
        async move { local_rows(&local) }
    };
    let (p, _) = write_while_killing_twice(&file, &env, &pool, "no such line", rows).await;
    wait_rows("uploaded", &remote, 100_000, Duration::from_secs(120), &p).await;
    // Every period closed and uploaded: a repeat would be in a later period's files by now.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !settled(&local) {
        assert!(Instant::now() < deadline, "periods still open or waiting for upload:\n{}", p.log.lock().unwrap().join("\n"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ids = audit(&remote);
    let repeated = ids.values().filter(|n| **n > 1).count();
    assert_eq!((ids.len(), repeated), (100_000, 0), "rows missing or repeated at the SFTP server");
    assert_eq!((ids.keys().next(), ids.keys().last()), (Some(&0), Some(&99_999)));
    let periods = manifests(&remote).len();
    let gz = std::fs::read_dir(&remote).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".csv.gz")).count();
    eprintln!(
        "hourly files to SFTP through 2 x kill -9: 100000 rows in {gz} gzip files of {periods} periods, each row once, every SHA-256 as its manifest says"
    );
    // The local copy matches what was uploaded.
    assert_eq!(audit(&local).len(), 100_000);
    assert!(p.terminate().await.success());
    std::fs::remove_dir_all(&remote).ok();
}

/// Whenever a temporary upload (`.NAME.part`) is growing in `remote`, kills the server's processes for each
/// session (not its listener): the connection drops in the middle of a file. Stops after `cuts` cuts;
/// returns how many it made so far.
fn cut_mid_file(listener_pid: u32, program: &'static str, remote: PathBuf, cuts: usize) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    let made = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = made.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        while count.load(std::sync::atomic::Ordering::Relaxed) < cuts && Instant::now() < deadline {
            let sizes = || -> BTreeMap<String, u64> {
                std::fs::read_dir(&remote)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
                    .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().map(|m| m.len()).unwrap_or(0)))
                    .collect()
            };
            let before = sizes();
            std::thread::sleep(Duration::from_millis(3));
            // A temporary file that grew in the last 3 ms: a transfer is under way.
            let growing = sizes().iter().any(|(n, len)| before.get(n).is_some_and(|b| len > b));
            if !growing {
                continue;
            }
            let out = std::process::Command::new("pgrep").arg("-x").arg(program).output().unwrap();
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
                if pid != listener_pid {
                    let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
            }
            // The next cut needs a transfer growing again: the uploader's retry.
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    made
}

fn pid_file(service_dir: &str, name: &str) -> u32 {
    let path = sluice_testkit::workspace_root().join("target/services").join(service_dir).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().parse().unwrap()
}

/// Writes 30,000 rows of 4 KB (about 120 MB of files) while every connection the server opens is killed
/// within 30 ms; then lets it be. Every row must arrive once, with no temporary file left behind.
async fn cut_uploads_then_check(upload: String, program: &'static str, listener: u32, remote: &Path) {
    let (my_url, db) = fresh_mariadb_database("cut").await;
    let pool = mysql_async::Pool::new(my_url.as_str());
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop("CREATE TABLE orders (id BIGINT PRIMARY KEY, note TEXT)").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "drop.toml",
        &format!(
            r#"
[source]
type = "mysql_binlog"
url = "{my_url}"
server_id = {sid}
include = ["{db}.*"]

[sinks.partner]
type = "file_drop"
dir = "out"
format = "csv"
meta_columns = false
period = "3s"
grace = "1s"

[sinks.partner.upload]
{upload}
timeout = "5s"
"#,
            sid = server_id(8) + if program == "vsftpd" { 0 } else { 100 },
        ),
    );
    let p = RunningPipeline::start(&file, &[]);
    p.wait_log("binlog stream started", Duration::from_secs(30)).await;
    let cut = cut_mid_file(listener, program, remote.to_path_buf(), 3);
    let note = "n".repeat(4000);
    for t in 0..30 {
        let values: Vec<String> = (0..1000).map(|r| format!("({}, '{note}')", t * 1000 + r)).collect();
        c.query_drop(format!("INSERT INTO orders VALUES {}", values.join(","))).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    while cut.load(std::sync::atomic::Ordering::Relaxed) < 3 {
        assert!(Instant::now() < deadline, "no transfer to cut:\n{}", p.log.lock().unwrap().join("\n"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failures = |p: &RunningPipeline| p.log.lock().unwrap().iter().filter(|l| l.contains("upload failed")).count();
    wait_rows("uploaded after the cuts", remote, 30_000, Duration::from_secs(150), &p).await;
    let ids = audit(remote);
    assert_eq!((ids.len(), ids.values().filter(|n| **n > 1).count()), (30_000, 0), "rows missing or repeated");
    let cut_count = failures(&p);
    let mid_file =
        p.log.lock().unwrap().iter().filter(|l| l.contains("upload failed") && (l.contains("STOR") || l.contains("writing") || l.contains("closing"))).count();
    eprintln!("{program}: {cut_count} uploads cut and retried ({mid_file} in the middle of a file); 30000 rows arrived once each, no temporary file left");
    assert!(mid_file > 0, "no cut landed inside a transfer:\n{}", p.log.lock().unwrap().join("\n"));
    assert!(p.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn ftp_uploads_survive_connections_cut_mid_file() {
    let url = service(Service::Ftp);
    let (remote, folder) = remote_folder("ftpcut");
    let listener = pid_file("vsftpd", "vsftpd.pid");
    cut_uploads_then_check(format!("url = \"{url}/{folder}\""), "vsftpd", listener, &remote).await;
    std::fs::remove_dir_all(&remote).ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn sftp_uploads_survive_connections_cut_mid_file() {
    let url = service(Service::Sftp);
    let (remote, folder) = remote_folder("sftpcut");
    let listener = pid_file("sshd", "sshd.pid");
    let upload = format!("url = \"{url}/{folder}\"\nkey_file = \"{}\"\nhost_key = \"{}\"", sftp_key().display(), sftp_host_key());
    cut_uploads_then_check(upload, "sshd", listener, &remote).await;
    std::fs::remove_dir_all(&remote).ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn sftp_refuses_a_server_whose_host_key_differs() {
    let url = service(Service::Sftp);
    let (remote, folder) = remote_folder("badhost");
    let (my_url, db) = fresh_mariadb_database("hostkey").await;
    let pool = mysql_async::Pool::new(my_url.as_str());
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY)").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let file = write_file(
        dir.path(),
        "drop.toml",
        &format!(
            "[source]\ntype = \"mysql_binlog\"\nurl = \"{my_url}\"\nserver_id = {}\ninclude = [\"{db}.*\"]\n\n[sinks.partner]\ntype = \"file_drop\"\ndir = \"out\"\nperiod = \"2s\"\ngrace = \"1s\"\n\n[sinks.partner.upload]\nurl = \"{url}/{folder}\"\nkey_file = \"{}\"\nhost_key = \"{wrong}\"\n",
            server_id(9),
            sftp_key().display()
        ),
    );
    let p = RunningPipeline::start(&file, &[]);
    p.wait_log("binlog stream started", Duration::from_secs(30)).await;
    c.query_drop("INSERT INTO t VALUES (1)").await.unwrap();
    p.wait_log(&format!("not the configured `host_key` {wrong}"), Duration::from_secs(30)).await;
    assert_eq!(std::fs::read_dir(&remote).unwrap().count(), 0, "a file reached a server whose host key is not the configured one");
    // The period is closed and kept locally, waiting.
    assert!(manifest_rows(&dir.path().join("out")) == 1);
    assert!(p.terminate().await.success());
    std::fs::remove_dir_all(&remote).ok();
}
