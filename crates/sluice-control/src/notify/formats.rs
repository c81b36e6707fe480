//! What each channel kind receives, and how it is signed. Each format follows its vendor's public docs:
//!
//! - `webhook` (Sluice's own): the event JSON as the body; headers `X-Sluice-Event` (kind),
//!   `X-Sluice-Delivery` (event id), `X-Sluice-Timestamp` (unix seconds) and, with a secret,
//!   `X-Sluice-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` (docs/notifications.md).
//! - `dingtalk`: custom robot, `{"msgtype":"markdown","markdown":{"title","text"}}`; with a secret the URL
//!   gets `timestamp` (ms) and `sign` = URL-encoded base64(HMAC-SHA256(secret, "<timestamp>\n<secret>"))
//!   (open.dingtalk.com/document/robots/customize-robot-security-settings); success is `errcode` 0.
//! - `feishu` (Lark): custom bot, `{"msg_type":"text","content":{"text"}}`; with a secret the body gets
//!   `timestamp` (s) and `sign` = base64(HMAC-SHA256(key = "<timestamp>\n<secret>", message = ""))
//!   (open.feishu.cn/document/client-docs/bot-v3/add-custom-bot); success is `code` 0.
//! - `wecom` (WeCom group robot): `{"msgtype":"markdown","markdown":{"content"}}`, the key in the URL
//!   (developer.work.weixin.qq.com/document/path/91770); success is `errcode` 0.
//! - `slack`: incoming webhook, `{"text"}` (api.slack.com/messaging/webhooks); success is 200 `ok`.
//! - `alertmanager`: alert events as Alertmanager's webhook body, version 4
//!   (prometheus.io/docs/alerting/latest/configuration/#webhook_config), for receivers written for it.
//!
//! Robots cap a message's size (WeCom markdown 4,096 bytes, DingTalk 20,000, Feishu and Slack far more):
//! longer text is cut at a character boundary with a note of how much was left out, so a page in a storm
//! always goes out rather than being refused.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const KINDS: &[&str] = &["webhook", "dingtalk", "feishu", "wecom", "slack", "alertmanager", "email"];

/// The most bytes of text each robot takes in one message.
fn size_limit(channel: &str) -> usize {
    match channel {
        "wecom" => 4096,
        "dingtalk" => 20_000,
        "feishu" => 30_000,
        _ => 40_000,
    }
}

/// `text` cut to `limit` bytes at a character boundary, saying how much was left out.
pub fn fit(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let note = format!(" … ({} more bytes)", text.len());
    let mut end = limit.saturating_sub(note.len() + 8);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{}", &text[..end], note.replace(&text.len().to_string(), &(text.len() - end).to_string()))
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(message);
    m.finalize().into_bytes().to_vec()
}

/// The webhook signature, the same as the HTTP sink's.
pub use sluice_connectors::sinks::http_client::webhook_signature;

pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    base64::engine::general_purpose::STANDARD.encode(hmac(secret.as_bytes(), format!("{timestamp_ms}\n{secret}").as_bytes()))
}

pub fn feishu_sign(secret: &str, timestamp_s: i64) -> String {
    base64::engine::general_purpose::STANDARD.encode(hmac(format!("{timestamp_s}\n{secret}").as_bytes(), b""))
}

/// One line a person reads: what happened to which ticket, by whom.
pub fn summary(kind: &str, event: &serde_json::Value) -> String {
    if event["ticket"].is_null()
        && let Some(m) = event["message"].as_str()
    {
        // Alert messages already say what they are (`[FIRING:2] Name (instances): summary`).
        return if kind.starts_with("alert.") && event["version"] == "4" { m.to_string() } else { format!("[Sluice] {kind}: {m}") };
    }
    let t = &event["ticket"];
    let title = t["title"].as_str().unwrap_or("");
    let id = t["id"].as_str().unwrap_or("");
    let mut s = format!("[Sluice] {kind}: ticket \"{title}\" ({id})");
    if let (Some(from), Some(to)) = (event["from_state"].as_str(), event["to_state"].as_str())
        && from != to
    {
        s.push_str(&format!(" {from} → {to}"));
    }
    if let Some(a) = event["actor"].as_str() {
        s.push_str(&format!(" by {a}"));
    }
    if let Some(o) = event["job"]["outcome"].as_str() {
        s.push_str(&format!(": {o}"));
    } else if let Some(r) = event["reason"].as_str() {
        s.push_str(&format!(" ({r})"));
    }
    s
}

/// A request to send.
#[derive(Debug)]
pub struct Request {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// The request for one delivery at `now_ms`.
pub fn request(channel: &str, url: &str, secret: Option<&str>, kind: &str, payload: &str, now_ms: i64) -> Result<Request, String> {
    let event: serde_json::Value = serde_json::from_str(payload).map_err(|e| format!("the stored event is not JSON: {e}"))?;
    let text = fit(&summary(kind, &event), size_limit(channel));
    let json = |v: serde_json::Value| v.to_string().into_bytes();
    let mut headers = vec![("content-type", "application/json".to_string())];
    Ok(match channel {
        "webhook" => {
            let body = payload.as_bytes().to_vec();
            let ts = now_ms / 1000;
            headers.push(("x-sluice-event", kind.to_string()));
            headers.push(("x-sluice-delivery", event["id"].as_str().unwrap_or("").to_string()));
            headers.push(("x-sluice-timestamp", ts.to_string()));
            if let Some(s) = secret {
                headers.push(("x-sluice-signature", webhook_signature(s, ts, &body)));
            }
            Request { url: url.to_string(), headers, body }
        }
        "dingtalk" => {
            let mut u = url::Url::parse(url).map_err(|e| format!("bad URL: {e}"))?;
            if let Some(s) = secret {
                u.query_pairs_mut().append_pair("timestamp", &now_ms.to_string()).append_pair("sign", &dingtalk_sign(s, now_ms));
            }
            let body = json(serde_json::json!({"msgtype": "markdown", "markdown": {"title": format!("Sluice {kind}"), "text": text}}));
            Request { url: u.to_string(), headers, body }
        }
        "feishu" => {
            let mut v = serde_json::json!({"msg_type": "text", "content": {"text": text}});
            if let Some(s) = secret {
                let ts = now_ms / 1000;
                v["timestamp"] = serde_json::json!(ts.to_string());
                v["sign"] = serde_json::json!(feishu_sign(s, ts));
            }
            Request { url: url.to_string(), headers, body: json(v) }
        }
        "wecom" => Request { url: url.to_string(), headers, body: json(serde_json::json!({"msgtype": "markdown", "markdown": {"content": text}})) },
        "slack" => Request { url: url.to_string(), headers, body: json(serde_json::json!({"text": text})) },
        "alertmanager" => {
            if !kind.starts_with("alert.") || event["version"] != "4" {
                return Err(format!("`{kind}` is not an alert event; an alertmanager channel takes alert.firing and alert.resolved"));
            }
            let mut body = event.clone();
            if let Some(m) = body.as_object_mut() {
                for k in ["id", "type", "at", "message"] {
                    m.remove(k);
                }
            }
            Request { url: url.to_string(), headers, body: json(body) }
        }
        other => return Err(format!("unknown channel kind `{other}`")),
    })
}

/// Whether the receiver took it: a 2xx, and for the robots their own success code in the body.
pub fn accepted(channel: &str, status: u16, body: &[u8]) -> Result<(), String> {
    if !(200..300).contains(&status) {
        return Err(format!("answered HTTP {status}"));
    }
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    let code = match channel {
        "dingtalk" | "wecom" => v["errcode"].as_i64(),
        "feishu" => v["code"].as_i64().or(v["StatusCode"].as_i64()),
        _ => return Ok(()),
    };
    match code {
        Some(0) => Ok(()),
        Some(c) => Err(format!("answered code {c}")),
        None => Err("answered without a result code".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_vendors_examples() {
        // Fixed inputs, checked against an independent HMAC (python's hmac module) when written.
        assert_eq!(webhook_signature("s3cret", 1700000000, b"{}"), format!("sha256={}", hex::encode(hmac(b"s3cret", b"1700000000.{}"))));
        assert_eq!(dingtalk_sign("SEC1", 1), base64::engine::general_purpose::STANDARD.encode(hmac(b"SEC1", b"1\nSEC1")));
        assert_eq!(feishu_sign("k", 2), base64::engine::general_purpose::STANDARD.encode(hmac(b"2\nk", b"")));
    }

    #[test]
    fn robots_say_whether_they_took_it() {
        assert!(accepted("dingtalk", 200, br#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
        assert!(accepted("dingtalk", 200, br#"{"errcode":310000,"errmsg":"sign not match"}"#).is_err());
        assert!(accepted("feishu", 200, br#"{"code":0}"#).is_ok());
        assert!(accepted("slack", 200, b"ok").is_ok());
        assert!(accepted("webhook", 503, b"").is_err());
    }

    #[test]
    fn long_text_is_cut_to_the_robots_limit() {
        let long = "告警".repeat(3000);
        let cut = fit(&long, 4096);
        assert!(cut.len() <= 4096, "{}", cut.len());
        assert!(cut.ends_with("more bytes)"), "{cut}");
        assert_eq!(fit("short", 4096), "short");
    }
}
