//! The router: every route, its OpenAPI description, and the layers around it.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, Request};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::authorize;
use crate::error::ApiError;
use crate::routes;
use crate::state::AppState;
use crate::telemetry::track;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Request bodies above this are refused (413) before they are read whole.
const BODY_LIMIT: usize = 1024 * 1024;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Sluice API", description = "Sluice control plane. Every route except /healthz and /readyz needs `Authorization: Bearer <token>`."),
    tags((name = "instances"), (name = "pipelines"), (name = "review"), (name = "users"), (name = "audit"), (name = "metrics"), (name = "alerts"), (name = "system"))
)]
struct ApiDoc;

/// The OpenAPI document, built from the handlers' annotations.
pub fn openapi() -> OpenApi {
    let (_, api) = api_router().split_for_parts();
    api
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .merge(routes::system::router())
        .merge(routes::instances::router())
        .merge(routes::users::router())
        .merge(routes::audit::router())
        .merge(routes::pipelines::router())
        .merge(routes::review::router())
        .merge(routes::projects::router())
        .merge(routes::tickets::router())
        .merge(routes::flows::router())
        .merge(routes::channels::router())
        .merge(routes::windows::router())
        .merge(routes::backups::router())
        .merge(routes::metrics_api::router())
        .merge(routes::alerts::router())
}

/// Builds the whole application.
pub fn app(state: AppState) -> Router {
    let (router, mut api) = api_router().split_for_parts();
    api.paths.paths.insert(
        "/api/v1/openapi.json".into(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .summary(Some("This document"))
                .tag("system")
                .response("200", utoipa::openapi::Response::new("the OpenAPI 3 document"))
                .security(utoipa::openapi::security::SecurityRequirement::new("bearer", Vec::<String>::new()))
                .build(),
        ),
    );
    api.components.get_or_insert_with(Default::default).add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    let api = Arc::new(api);
    router
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let api = api.clone();
                async move { axum::Json(api.as_ref().clone()) }
            }),
        )
        .route_layer(from_fn_with_state(state.clone(), authorize))
        .route_layer(from_fn(track))
        .fallback(|| async { ApiError::NotFound { what: "route".into() }.into_response() })
        .with_state(state)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let rid = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %loggable_path(req.uri().path()), request_id = %rid)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// The path as logs may show it: a download link's token is a secret, so it is left out.
fn loggable_path(path: &str) -> &str {
    if path.starts_with("/api/v1/exports/") { "/api/v1/exports/{token}" } else { path }
}
