//! The one path of Kiln's REST-JSON services (EBS direct, Recycle Bin): read the body with a
//! cap, take the client's job slot, verify SigV4 for the service, run the handler on a blocking
//! thread, and turn errors into the service's envelope, logging refusals at a bounded rate.

use std::sync::Arc;

use axum::body::{to_bytes, Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use kiln_core::{Ctx, Kiln};
use kiln_ec2::sigv4::HttpRequest;
use serde_json::Value;
use tracing::Instrument;

use crate::auth::authenticate;
use crate::conn::claimed_key;
use crate::error::ApiError;
use crate::state::AppState;

/// Everything a handler needs from the request, read and authenticated.
pub(crate) struct Call {
    pub(crate) ctx: Ctx,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// Reads, authenticates (SigV4 service `service`) and runs one REST-JSON request on a
/// blocking thread; errors become `on_error`'s response.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_as<F>(
    service: &'static str,
    on_error: fn(&ApiError, &str) -> Response,
    state: Arc<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
    f: F,
) -> Response
where
    F: FnOnce(&Kiln, Call) -> Result<Response, ApiError> + Send + 'static,
{
    let request_id = uuid::Uuid::new_v4().to_string();
    let span =
        tracing::info_span!("rest", service, id = %request_id, path = %uri.path(), account = tracing::field::Empty);
    let rid = request_id.clone();
    let refusals = Arc::clone(&state);
    async move {
        let result = async {
            let body =
                to_bytes(body, state.max_body_bytes).await.map_err(|_| ApiError::BodyTooLarge(state.max_body_bytes))?;
            let span = tracing::Span::current();
            let pairs: Vec<(String, String)> = headers
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            // The same per-client job slots as EC2 Query requests: one key cannot starve the rest.
            let permit = state.jobs.acquire(claimed_key(&pairs, uri.query().unwrap_or(""))).await;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let _enter = span.enter();
                let req = HttpRequest {
                    method: method.as_str(),
                    path: uri.path(),
                    query: uri.query().unwrap_or(""),
                    headers: &pairs,
                    body: &body,
                };
                let ctx = authenticate(&state.kiln, &req, chrono::Utc::now(), service)?;
                span.record("account", ctx.account.as_str());
                f(&state.kiln, Call { ctx, headers, body })
            })
            .await
            .map_err(|e| ApiError::Internal(format!("request task failed: {e}")))?
        }
        .await;
        match result {
            Ok(r) => r,
            Err(e) => {
                if !e.is_internal() {
                    if let Some(suppressed) = refusals.refusals.allow() {
                        tracing::info!(error = %e, suppressed, "request refused");
                    }
                }
                on_error(&e, &rid)
            }
        }
    }
    .instrument(span)
    .await
}

pub(crate) fn json_response(status: StatusCode, v: Value) -> Response {
    let mut resp = (status, v.to_string()).into_response();
    resp.headers_mut().insert("content-type", "application/json".parse().expect("static header"));
    resp
}
