//! The HTTP webhook sink against a real HTTP server: the body, the headers, and which answers are retried.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use sluice_connectors::scope::Scope;
use sluice_connectors::sinks::http::{HttpSink, HttpSinkConfig};
use sluice_core::Secret;
use sluice_core::component::{CounterType, Metric, Record};
use sluice_pipeline::Sink;

/// A received request: its Authorization header, its JSON body, and its signature headers
/// (`X-Sluice-Timestamp`, `X-Sluice-Signature`, `X-Sluice-Batch-Id`) with the raw body.
type Received = (Option<String>, serde_json::Value, [Option<String>; 3], Vec<u8>);

#[derive(Clone, Default)]
struct Hook {
    bodies: Arc<Mutex<Vec<Received>>>,
    answer: Arc<AtomicU16>,
}

async fn receive(State(h): State<Hook>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let signed = [header("x-sluice-timestamp"), header("x-sluice-signature"), header("x-sluice-batch-id")];
    h.bodies.lock().unwrap().push((header("authorization"), serde_json::from_slice(&body).unwrap(), signed, body.to_vec()));
    StatusCode::from_u16(h.answer.load(Ordering::Relaxed)).unwrap()
}

fn metric(i: i64) -> Record {
    Record::Metric(Metric {
        endpoint: "h".into(),
        metric: "m".into(),
        timestamp: i,
        step: 60,
        value: i as f64,
        counter_type: CounterType::Gauge,
        tags: BTreeMap::new(),
    })
}

#[tokio::test]
async fn posts_json_batches_and_classifies_answers() {
    let hook = Hook { answer: Arc::new(AtomicU16::new(200)), ..Default::default() };
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(hook.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let config = HttpSinkConfig {
        url,
        headers: BTreeMap::from([("Authorization".to_string(), Secret::new("Bearer t0k3n".to_string()))]),
        secret: Some(Secret::new("s3cret".to_string())),
        batch_max: std::num::NonZeroUsize::new(2).unwrap(),
        timeout: std::time::Duration::from_secs(5),
    };
    let mut sink = HttpSink::new(&config, &Scope::operator(std::path::Path::new("p.toml"))).unwrap();
    let batch = sluice_pipeline::Batch::of((0..3).map(metric).collect());
    assert!(sink.deliver(&batch).await.unwrap().is_empty());
    {
        let bodies = hook.bodies.lock().unwrap();
        assert_eq!(bodies.len(), 2, "3 records in batches of 2");
        assert_eq!(bodies[0].0.as_deref(), Some("Bearer t0k3n"));
        assert_eq!(bodies[0].1.as_array().unwrap().len(), 2);
        assert_eq!(bodies[1].1[0]["value"], 2.0);
        // The signature, checked with Python's own HMAC over the documented message.
        let [Some(ts), Some(sig), Some(batch_id)] = bodies[0].2.clone() else { panic!("signature headers missing: {:?}", bodies[0].2) };
        let out = std::process::Command::new("python3")
            .args(["-c", "import hmac,hashlib,sys; print('sha256=' + hmac.new(b's3cret', sys.argv[1].encode() + b'.' + sys.stdin.buffer.read(), hashlib.sha256).hexdigest())", &ts])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(&bodies[0].3)?;
                c.wait_with_output()
            })
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), sig);
        assert_eq!(batch_id.len(), 32);
        assert_ne!(bodies[1].2[2].as_deref(), Some(batch_id.as_str()), "each request's records have their own id");
    }
    hook.answer.store(503, Ordering::Relaxed);
    assert!(sink.deliver(&batch).await.unwrap_err().retryable, "5xx is retried");
    hook.answer.store(429, Ordering::Relaxed);
    assert!(sink.deliver(&batch).await.unwrap_err().retryable, "429 is retried");
    hook.answer.store(400, Ordering::Relaxed);
    assert!(!sink.deliver(&batch).await.unwrap_err().retryable, "other 4xx is refused for good");
    assert!(format!("{:?}", config.headers).contains("***"), "header values print redacted");
}
