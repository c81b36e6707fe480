//! The `email` channel: events as e-mail over SMTP. The channel URL says where and to whom:
//! `smtp://[user:password@]host[:port]?from=alerts@example.com&to=dba@example.com,oncall@example.com`
//! with `tls=starttls` (default for port 587), `tls=tls` (implicit TLS; the `smtps://` scheme, default port
//! 465) or `tls=none` (a relay on a trusted network; default for port 25 and others). The URL, with its
//! password, is stored encrypted like every channel URL. The server's address must pass the egress policy.
//!
//! The subject is the event's one-line summary; the body lists, for alert events, each alert's labels,
//! annotations and times, else the event as JSON.

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Where and how to send, from a channel URL.
#[derive(Debug)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub tls: &'static str,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    user: Option<(String, String)>,
}

/// Parses and checks a channel URL; the error names what is wrong (never the password).
pub fn parse(url: &str) -> Result<Target, String> {
    let u = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let implicit = match u.scheme() {
        "smtp" => false,
        "smtps" => true,
        other => return Err(format!("`{other}://`: an email channel's URL is smtp:// or smtps://")),
    };
    let host = u.host_str().ok_or("the URL names no SMTP host")?.trim_matches(['[', ']']).to_string();
    let mut from = None;
    let mut to = Vec::new();
    let mut tls = None;
    for (k, v) in u.query_pairs() {
        match k.as_ref() {
            "from" => from = Some(v.parse::<Mailbox>().map_err(|e| format!("from: `{v}` is not an address: {e}"))?),
            "to" => {
                for a in v.split(',').map(str::trim).filter(|a| !a.is_empty()) {
                    to.push(a.parse::<Mailbox>().map_err(|e| format!("to: `{a}` is not an address: {e}"))?);
                }
            }
            "tls" => {
                tls = Some(match v.as_ref() {
                    "none" => "none",
                    "starttls" => "starttls",
                    "tls" => "tls",
                    other => return Err(format!("tls: `{other}` is not none, starttls or tls")),
                })
            }
            other => return Err(format!("unknown parameter `{other}` (from, to, tls)")),
        }
    }
    let port = u.port().unwrap_or(if implicit { 465 } else { 587 });
    let tls = tls.unwrap_or(if implicit {
        "tls"
    } else if port == 587 {
        "starttls"
    } else {
        "none"
    });
    let user = (!u.username().is_empty()).then(|| {
        let dec = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        (dec(u.username()), dec(u.password().unwrap_or("")))
    });
    if to.is_empty() {
        return Err("to: at least one recipient is required".into());
    }
    Ok(Target { host, port, tls, from: from.ok_or("from: the sender address is required")?, to, user })
}

fn body(kind: &str, event: &serde_json::Value) -> String {
    let mut out = String::new();
    if let Some(alerts) = event["alerts"].as_array() {
        for a in alerts {
            out.push_str(&format!("{} — {}\n", a["status"].as_str().unwrap_or(""), a["labels"]["alertname"].as_str().unwrap_or("")));
            if let Some(ann) = a["annotations"].as_object() {
                for (k, v) in ann {
                    out.push_str(&format!("  {k}: {}\n", v.as_str().unwrap_or("")));
                }
            }
            if let Some(labels) = a["labels"].as_object() {
                let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect();
                out.push_str(&format!("  labels: {}\n", l.join(", ")));
            }
            out.push_str(&format!("  since {}", a["startsAt"].as_str().unwrap_or("")));
            if a["status"] == "resolved" {
                out.push_str(&format!(", resolved {}", a["endsAt"].as_str().unwrap_or("")));
            }
            out.push_str("\n\n");
        }
    } else {
        out.push_str(&serde_json::to_string_pretty(event).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("\n-- \nSluice ({kind}, event {})\n", event["id"].as_str().unwrap_or("")));
    out
}

/// Sends one event. Errors say what failed (connecting, the server's answer), never the password.
pub async fn send(url: &str, kind: &str, payload: &str, egress: &sluice_core::egress::EgressPolicy) -> Result<(), String> {
    let t = parse(url)?;
    let addrs: Vec<std::net::IpAddr> =
        tokio::net::lookup_host((t.host.as_str(), t.port)).await.map_err(|e| format!("cannot resolve `{}`: {e}", t.host))?.map(|a| a.ip()).collect();
    egress.check(&t.host, &addrs).map_err(|e| e.to_string())?;
    let event: serde_json::Value = serde_json::from_str(payload).map_err(|e| format!("the stored event is not JSON: {e}"))?;
    let subject = super::formats::summary(kind, &event);
    let mut m = Message::builder().from(t.from.clone()).subject(subject).header(ContentType::TEXT_PLAIN);
    for r in &t.to {
        m = m.to(r.clone());
    }
    if let Some(id) = event["id"].as_str() {
        m = m.message_id(Some(format!("<{id}@sluice>")));
    }
    let message = m.body(body(kind, &event)).map_err(|e| format!("cannot build the message: {e}"))?;
    let params = || TlsParameters::new(t.host.clone()).map_err(|e| format!("TLS: {e}"));
    let tls = match t.tls {
        "tls" => Tls::Wrapper(params()?),
        "starttls" => Tls::Required(params()?),
        _ => Tls::None,
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&t.host).port(t.port).tls(tls).timeout(Some(Duration::from_secs(15)));
    if let Some((u, p)) = &t.user {
        b = b.credentials(Credentials::new(u.clone(), p.clone()));
    }
    b.build().send(message).await.map(|_| ()).map_err(|e| format!("SMTP: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn channel_urls_are_checked() {
        let t = super::parse("smtp://127.0.0.1:2525?from=sluice@example.com&to=a@example.com,b@example.com").unwrap();
        assert_eq!((t.port, t.tls, t.to.len()), (2525, "none", 2));
        assert_eq!(super::parse("smtps://mail.example.com?from=x@example.com&to=y@example.com").unwrap().tls, "tls");
        assert_eq!(super::parse("smtp://mail.example.com?from=x@example.com&to=y@example.com").unwrap().tls, "starttls");
        assert!(super::parse("smtp://h?from=x@example.com").unwrap_err().starts_with("to:"));
        assert!(super::parse("smtp://h?from=nope&to=y@example.com").unwrap_err().starts_with("from:"));
        assert!(super::parse("http://h?from=x@example.com&to=y@example.com").is_err());
    }
}
