//! A TCP proxy in front of a real test service, which a test can take down: every open connection is cut
//! and new ones are refused until it is brought back. The service itself keeps running for the other tests;
//! to the code under test its target is down.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    down: Arc<AtomicBool>,
    /// Bumped on every `down`: connections of an older generation close.
    generation: watch::Sender<u64>,
    pub connections: Arc<AtomicU64>,
    _task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let connections = Arc::new(AtomicU64::new(0));
        let upstream = upstream.to_string();
        let task = {
            let (down, gen_tx, connections) = (down.clone(), generation.clone(), connections.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else { continue };
                    if down.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    connections.fetch_add(1, Ordering::Relaxed);
                    let mut gen_rx = gen_tx.subscribe();
                    let born = *gen_rx.borrow();
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = async { while gen_rx.changed().await.is_ok() { if *gen_rx.borrow() != born { break; } } } => {}
                        }
                    });
                }
            })
        };
        Self { port, down, generation, connections, _task: Arc::new(Mutex::new(Some(task))) }
    }

    /// `url` with its host:port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let (host, port) = crate::host_port(url).expect("a URL with host:port");
        url.replacen(&format!("{host}:{port}"), &format!("127.0.0.1:{}", self.port), 1)
    }

    /// Cuts every connection and refuses new ones.
    pub fn take_down(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn bring_up(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(t) = self._task.lock().unwrap().take() {
            t.abort();
        }
    }
}
