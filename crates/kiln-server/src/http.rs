//! The HTTP front: one handler for every EC2 Query request (and the STS calls that share the
//! endpoint, told apart by their credential scope).
//!
//! Flow: read the body (bounded) → SigV4 → decode params → typed action → DryRun check →
//! dispatch on a blocking thread (the metadata store is synchronous) → XML.

use std::sync::Arc;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use kiln_ec2::sigv4::HttpRequest;
use kiln_ec2::xml::error_document;
use kiln_ec2::{Ec2Request, Params};
use tracing::{info, warn, Instrument};

use crate::auth::authenticate;
use crate::conn::{claimed_key, LogLimiter};
use crate::dispatch::dispatch;
use crate::error::{to_wire, ApiError};
pub use crate::state::AppState;

/// The router: `/_kiln/health` for liveness, everything else is EC2.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/_kiln/health", get(|| async { "ok" }))
        .merge(crate::ebs::routes())
        .merge(crate::rbin::routes())
        .fallback(handle)
        .with_state(state)
}

fn xml_response(status: StatusCode, body: String, request_id: &str) -> Response {
    let mut resp = (status, body).into_response();
    let headers = resp.headers_mut();
    headers.insert("content-type", "text/xml;charset=UTF-8".parse().expect("static header"));
    if let Ok(v) = request_id.parse() {
        headers.insert("x-amzn-requestid", v);
    }
    resp
}

fn error_response(e: &ApiError, request_id: &str, refusals: &LogLimiter) -> Response {
    let wire = to_wire(e);
    if e.is_internal() {
        warn!(error = %e, "internal error");
    } else if let Some(suppressed) = refusals.allow() {
        info!(code = %wire.code, suppressed, "request refused");
    }
    let status = StatusCode::from_u16(wire.status).unwrap_or(StatusCode::BAD_REQUEST);
    xml_response(status, error_document(&wire.code, &wire.message, request_id), request_id)
}

async fn handle(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!("request", id = %request_id, action = tracing::field::Empty, account = tracing::field::Empty);
    let header_pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let service = if crate::sts::is_sts(&header_pairs, uri.query().unwrap_or("")) { "sts" } else { "ec2" };
    async move {
        match (handle_inner(Arc::clone(&state), method, uri, header_pairs, body, service, &request_id).await, service) {
            (Ok(xml), _) => xml_response(StatusCode::OK, xml, &request_id),
            (Err(e), "sts") => {
                if let Some(suppressed) = state.refusals.allow() {
                    info!(error = %e, suppressed, "request refused");
                }
                let (status, body) = crate::sts::error(&e, &request_id);
                xml_response(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), body, &request_id)
            }
            (Err(e), _) => error_response(&e, &request_id, &state.refusals),
        }
    }
    .instrument(span)
    .await
}

async fn handle_inner(
    state: Arc<AppState>,
    method: Method,
    uri: Uri,
    header_pairs: Vec<(String, String)>,
    body: Body,
    service: &'static str,
    request_id: &str,
) -> Result<String, ApiError> {
    if method != Method::GET && method != Method::POST {
        return Err(ApiError::Protocol(kiln_ec2::ProtocolError::InvalidValue {
            param: "method".into(),
            value: method.to_string(),
            reason: "EC2 accepts GET and POST".into(),
        }));
    }
    let body: Bytes =
        to_bytes(body, state.max_body_bytes).await.map_err(|_| ApiError::BodyTooLarge(state.max_body_bytes))?;
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let request_id = request_id.to_string();
    let span = tracing::Span::current();
    // One client's requests queue for its few slots here, holding no thread meanwhile.
    let permit = state.jobs.acquire(claimed_key(&header_pairs, &query)).await;
    // SQLite and key generation block; keep them off the async workers.
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let _enter = span.enter();
        let req =
            HttpRequest { method: method.as_str(), path: &path, query: &query, headers: &header_pairs, body: &body };
        let ctx = authenticate(&state.kiln, &req, chrono::Utc::now(), service)?;
        span.record("account", ctx.account.as_str());
        let mut params = Params::default();
        params.merge_urlencoded(query.as_bytes())?;
        if method == Method::POST {
            params.merge_urlencoded(&body)?;
        }
        if service == "sts" {
            span.record("action", params.get("Action").unwrap_or(""));
            let out = crate::sts::dispatch(&state.kiln, &ctx, &params, &request_id)?;
            info!("ok");
            return Ok(out);
        }
        let parsed = Ec2Request::parse(&params)?;
        span.record("action", parsed.action.name());
        if parsed.dry_run {
            return Err(ApiError::DryRun);
        }
        let out = dispatch(&state.kiln, &ctx, &parsed.action, &request_id)?;
        info!("ok");
        Ok(out)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("request task failed: {e}")))?
}
