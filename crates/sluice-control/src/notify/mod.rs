//! Delivering the outbox: every server runs one dispatcher that leases due deliveries from the store,
//! sends each in its channel's format (`formats`), and records the attempt: delivered, or retried with
//! exponential backoff (1 s doubling to 15 min) until [`MAX_ATTEMPTS`](sluice_store::notify::MAX_ATTEMPTS),
//! then left `failed`. Each channel receives its events in order. **At-least-once**: a server that dies mid-send leaves the lease to run out and the
//! delivery is sent again, so receivers dedupe on the event id (`X-Sluice-Delivery`, the payload's `id`).
//! Every request goes through the egress policy; answers are never logged beyond their status.
//!
//! **Robots' send rate**: DingTalk, Feishu, WeCom and Slack robots refuse more than about 20 messages a minute
//! (DingTalk and WeCom document 20/min per robot); a robot channel gets at most [`ROBOT_PER_MINUTE`] sends in
//! any 60 s from this server, later deliveries wait (postponed, not failed: a storm is delivered late, never
//! dropped; alert grouping keeps the count low in the first place).
//!
//! **Fallback**: when a delivery has failed [`FALLBACK_AFTER`] times, a `notify.delivery_failing` event is
//! emitted (once per delivery) naming the channel and the event it could not deliver: a channel subscribed to
//! `notify.*` (e-mail, say, beside a robot) is the fallback that tells someone the paging path is broken.
//! `notify.*` events never raise another, so a failing fallback cannot loop.

pub mod email;
pub mod formats;

use std::time::Duration;

use sluice_store::notify::{DueDelivery, MAX_ATTEMPTS};
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

const LEASE_MS: i64 = 60_000;

/// Sends per rolling minute to one robot channel.
pub const ROBOT_PER_MINUTE: usize = 20;
/// Failed attempts after which the fallback event is raised.
pub const FALLBACK_AFTER: i64 = 3;

fn is_robot(kind: &str) -> bool {
    matches!(kind, "dingtalk" | "feishu" | "wecom" | "slack")
}

fn backoff_ms(attempts: i64) -> i64 {
    (1000i64 << attempts.clamp(0, 20)).min(15 * 60 * 1000)
}

pub fn spawn_dispatcher(state: AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Per robot channel, when it was last sent to (within the last minute).
        let mut sent_at: std::collections::HashMap<String, std::collections::VecDeque<i64>> = std::collections::HashMap::new();
        loop {
            let mut busy = false;
            match state.store.lease_deliveries(50, LEASE_MS).await {
                Ok(due) => {
                    busy = !due.is_empty();
                    for d in due {
                        if is_robot(&d.channel_kind) {
                            let now = sluice_store::now_ms();
                            let window = sent_at.entry(d.channel_id.clone()).or_default();
                            while window.front().is_some_and(|t| now - t >= 60_000) {
                                window.pop_front();
                            }
                            if window.len() >= ROBOT_PER_MINUTE {
                                let free_at = window.front().map_or(now, |t| t + 60_000);
                                if let Err(e) = state.store.postpone_delivery(&d, free_at).await {
                                    tracing::error!(error = %e, "cannot postpone a delivery");
                                }
                                continue;
                            }
                            window.push_back(now);
                        }
                        let result = send(&state, &d).await;
                        if let Err(e) = &result
                            && d.attempts + 1 == FALLBACK_AFTER
                            && !d.event_kind.starts_with("notify.")
                        {
                            let payload = serde_json::json!({
                                "message": format!("channel {} ({}) failed {FALLBACK_AFTER} times to deliver {} {}: {e}", d.channel_id, d.channel_kind, d.event_kind, d.event_id),
                                "channel_id": d.channel_id, "channel_kind": d.channel_kind, "event_kind": d.event_kind, "event_id": d.event_id,
                                "attempts": d.attempts + 1, "error": e,
                            });
                            if let Err(e) = state.store.emit_event("notify.delivery_failing", None, &payload).await {
                                tracing::error!(error = %e, "cannot raise notify.delivery_failing");
                            }
                        }
                        let record = match result {
                            Ok(()) => Ok(()),
                            Err(e) if d.attempts + 1 >= MAX_ATTEMPTS => Err((e, None)),
                            Err(e) => Err((e, Some(sluice_store::now_ms() + backoff_ms(d.attempts)))),
                        };
                        if let Err(e) = state.store.delivery_attempted(&d, record).await {
                            tracing::error!(error = %e, "cannot record a delivery attempt");
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot lease deliveries"),
            }
            // Each channel gets one delivery per round (its oldest): go again at once while there is work.
            let pause = if busy { Duration::ZERO } else { Duration::from_millis(500) };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    })
}

async fn send(state: &AppState, d: &DueDelivery) -> Result<(), String> {
    if d.channel_kind == "email" {
        return email::send(&d.url, &d.event_kind, &d.payload, &state.settings.egress).await;
    }
    let req = formats::request(&d.channel_kind, &d.url, d.secret.as_deref(), &d.event_kind, &d.payload, sluice_store::now_ms())?;
    let url = reqwest::Url::parse(&req.url).map_err(|e| format!("bad URL: {e}"))?;
    let client = sluice_connectors::sinks::http_client::egress_client(&url, Duration::from_secs(10), Some(&state.settings.egress))?;
    let mut r = client.post(url);
    for (k, v) in &req.headers {
        r = r.header(*k, v);
    }
    let resp = r.body(req.body).send().await.map_err(|e| format!("cannot reach the channel: {}", e.without_url()))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap_or_default();
    formats::accepted(&d.channel_kind, status, &body)
}
