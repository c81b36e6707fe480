//! Authentication, authorisation and the audit of every mutating call, in one middleware that runs after
//! routing (so it knows the route pattern) and before any handler.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sluice_store::audit::AuditEntry;
use sluice_store::users::Principal;

use crate::error::ApiError;
use crate::policy::{Permission, allows};
use crate::state::AppState;

const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The request id (set by the request-id layer from `x-request-id`, or generated).
#[derive(Clone)]
pub struct RequestId(pub String);

/// Everything a handler knows about the call: who, which route, and the audit slot.
#[derive(Clone)]
pub struct Caller {
    pub principal: Principal,
    pub action: &'static str,
    pub request_id: String,
    audited: Arc<AtomicBool>,
}

impl Caller {
    /// The audit entry for this call's change, to be written in the same store transaction as the change.
    pub fn audit_entry(&self, outcome: &str, detail: Option<serde_json::Value>) -> AuditEntry {
        AuditEntry {
            actor: format!("user:{}", self.principal.user_name),
            action: self.action.to_string(),
            target: None,
            outcome: outcome.to_string(),
            detail,
            request_id: Some(self.request_id.clone()),
        }
    }

    /// The instances the caller may see: `None` for every instance (admin, dba and auditor hold global
    /// roles over the registry), else those of the projects they are a member of.
    pub async fn visible_instances(&self, store: &sluice_store::Store) -> Result<Option<std::collections::BTreeSet<String>>, ApiError> {
        match self.principal.role {
            sluice_core::Role::Admin | sluice_core::Role::Dba | sluice_core::Role::Auditor => Ok(None),
            _ => store.member_instances(&self.principal.user_id).await.map(Some).map_err(|e| self.store_error(e)),
        }
    }

    /// Marks the call as audited by the handler, so the middleware does not record it a second time.
    pub fn audited(&self) {
        self.audited.store(true, Ordering::Release);
    }

    pub fn store_error(&self, e: sluice_store::StoreError) -> ApiError {
        ApiError::from_store(e, &self.request_id)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or(ApiError::Unauthenticated)
    }
}

fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn is_mutating(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn request_id(req: &Request) -> String {
    req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-").to_string()
}

/// Authenticates, authorises, runs the handler, and audits mutating calls the handler did not audit itself
/// (refusals and failures).
pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let rid = request_id(&req);
    let Some(path) = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()) else {
        return ApiError::NotFound { what: "route".into() }.into_response();
    };
    let method = req.method().clone();
    // Fail closed: a route that is not in the policy table is refused, whoever calls it.
    let Some(rule) = state.routes.get(&(method.clone(), path.as_str())) else {
        tracing::error!(%method, route = %path, "route has no policy entry; refusing");
        return ApiError::Forbidden { permission: "unlisted-route" }.into_response();
    };
    if rule.permission == Permission::Public {
        return next.run(req).await;
    }
    let mutating = is_mutating(&method);
    let principal = match bearer(&req) {
        None => None,
        Some(token) => match state.store.authenticate(token).await {
            Ok(p) => p,
            Err(e) => return ApiError::from_store(e, &rid).into_response(),
        },
    };
    let Some(principal) = principal else {
        if mutating {
            record(&state, anonymous_entry(rule.action, "denied", &rid, "unauthenticated")).await;
        }
        return ApiError::Unauthenticated.into_response();
    };
    if !allows(principal.role, rule.permission) {
        if mutating {
            let mut e = anonymous_entry(rule.action, "denied", &rid, "forbidden");
            e.actor = format!("user:{}", principal.user_name);
            record(&state, e).await;
        }
        return ApiError::Forbidden { permission: rule.permission.as_str() }.into_response();
    }
    touch(&state, &principal.token_id).await;
    let audited = Arc::new(AtomicBool::new(false));
    let caller = Caller { principal, action: rule.action, request_id: rid.clone(), audited: audited.clone() };
    req.extensions_mut().insert(caller.clone());
    let resp = next.run(req).await;
    if mutating && !audited.load(Ordering::Acquire) {
        let status = resp.status();
        let outcome = if status.is_success() {
            "ok"
        } else if status.is_client_error() {
            "invalid"
        } else {
            "error"
        };
        let detail = (!status.is_success()).then(|| serde_json::json!({ "status": status.as_u16() }));
        record(&state, caller.audit_entry(outcome, detail)).await;
    }
    resp
}

fn anonymous_entry(action: &str, outcome: &str, rid: &str, reason: &str) -> AuditEntry {
    AuditEntry {
        actor: "anonymous".into(),
        action: action.into(),
        target: None,
        outcome: outcome.into(),
        detail: Some(serde_json::json!({ "reason": reason })),
        request_id: Some(rid.to_string()),
    }
}

async fn record(state: &AppState, entry: AuditEntry) {
    if let Err(e) = state.store.audit(&entry).await {
        tracing::error!(action = %entry.action, error = %e, "cannot write audit entry");
    }
}

/// Writes `last_used_at` at most once a minute per token.
async fn touch(state: &AppState, token_id: &str) {
    let due = {
        let mut map = state.token_touched.lock().expect("token map lock");
        let now = Instant::now();
        match map.get(token_id) {
            Some(t) if now.duration_since(*t) < TOUCH_EVERY => false,
            _ => {
                map.insert(token_id.to_string(), now);
                true
            }
        }
    };
    if due {
        let store = state.store.clone();
        let id = token_id.to_string();
        tokio::spawn(async move {
            if let Err(e) = store.touch_token(&id).await {
                tracing::warn!(error = %e, "cannot record token use");
            }
        });
    }
}
