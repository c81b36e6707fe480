//! What the binary's test modules share: a `sluice run` child process with its log, and waiting for a
//! condition with a deadline.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// A running `sluice run` with its log lines collected.
pub struct RunningPipeline {
    pub child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl RunningPipeline {
    pub fn start(file: &Path, env: &[(&str, String)]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.arg("run").arg(file).stdout(Stdio::null()).stderr(Stdio::piped()).env("NO_COLOR", "1").env("SLUICE_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        RunningPipeline { child, log }
    }

    pub async fn wait_log(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return;
            }
            if let Ok(Some(status)) = self.child_status() {
                panic!("sluice run exited ({status}) before logging `{needle}`:\n{}", self.log.lock().unwrap().join("\n"));
            }
            assert!(Instant::now() < deadline, "no `{needle}` in the log within {within:?}:\n{}", self.log.lock().unwrap().join("\n"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn child_status(&self) -> std::io::Result<Option<std::process::ExitStatus>> {
        // try_wait needs &mut; a clone of the pid check is enough here.
        let path = format!("/proc/{}/stat", self.child.id());
        match std::fs::read_to_string(path) {
            Ok(s) if s.split_whitespace().nth(2) == Some("Z") => Ok(Some(std::os::unix::process::ExitStatusExt::from_raw(0))),
            Ok(_) => Ok(None),
            Err(_) => Ok(Some(std::os::unix::process::ExitStatusExt::from_raw(0))),
        }
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub async fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() >= deadline {
                let log = self.log.lock().unwrap();
                let tail: Vec<&String> = log.iter().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
                panic!(
                    "sluice run did not stop on SIGTERM within 30 s; its last log lines:\n{}",
                    tail.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub async fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A process's resident memory in MiB (0 when it is gone).
pub fn rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .unwrap_or(0)
        / 1024
}

/// What a QoS 1 MQTT subscriber received: how many messages, and the distinct `id`s of their JSON rows.
pub type Received = Arc<Mutex<(i64, std::collections::HashSet<i64>)>>;

/// A QoS 1 subscriber to `filter` on the broker of `url` that stays connected and counts what arrives;
/// returns once the broker acknowledged the subscription.
pub async fn mqtt_subscriber(url: &str, client_id: &str, filter: &str) -> Received {
    let parsed = url::Url::parse(url).unwrap();
    let mut options = rumqttc::MqttOptions::new(client_id, parsed.host_str().unwrap(), parsed.port().unwrap());
    options.set_credentials(parsed.username(), parsed.password().unwrap_or_default()).set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 1000);
    client.subscribe(filter, rumqttc::QoS::AtLeastOnce).await.unwrap();
    let received: Received = Arc::default();
    let subscribed = Arc::new(tokio::sync::Notify::new());
    {
        let (received, subscribed) = (received.clone(), subscribed.clone());
        tokio::spawn(async move {
            // Owned here, so the subscription lives as long as the loop.
            let _client = client;
            while let Ok(event) = eventloop.poll().await {
                match event {
                    rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => subscribed.notify_one(),
                    rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                        let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
                        let mut r = received.lock().unwrap();
                        r.0 += 1;
                        r.1.insert(v["id"].as_i64().unwrap());
                    }
                    _ => {}
                }
            }
        });
    }
    tokio::time::timeout(Duration::from_secs(10), subscribed.notified()).await.expect("the subscription is acknowledged");
    received
}
