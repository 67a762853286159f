//! The EBS direct API over REST-JSON (service `ebs`, API 2019-11-02), so boto3's `ebs`
//! client works unchanged: `StartSnapshot`, `PutSnapshotBlock`, `CompleteSnapshot`,
//! `ListSnapshotBlocks`, `ListChangedBlocks`, `GetSnapshotBlock`.
//!
//! Errors use the service's own envelope: an `x-amzn-ErrorType` header and a JSON body with
//! `Message` and, where the model has one, `Reason`. [`to_ebs_error`] is the one place that
//! maps errors to it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use base64::Engine;
use kiln_core::storage::ebs::{BlockPage, StartSpec};
use kiln_core::{BlockArgument, CoreError, Kiln};
use kiln_types::Tag;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::rest::{json_response, run_as, Call};
use crate::state::AppState;

/// Routes of the EBS direct API.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/snapshots", post(start_snapshot))
        .route("/snapshots/completion/{id}", post(complete_snapshot))
        .route("/snapshots/{id}/blocks", get(list_blocks))
        .route("/snapshots/{id}/blocks/{index}", put(put_block).get(get_block))
        .route("/snapshots/{id}/changedblocks", get(changed_blocks))
}

/// An EBS error: HTTP status, `x-amzn-ErrorType`, message and optional reason.
fn to_ebs_error(e: &ApiError) -> (StatusCode, &'static str, String, Option<&'static str>) {
    let validation = |m: String, r: &'static str| (StatusCode::BAD_REQUEST, "ValidationException", m, Some(r));
    match e {
        ApiError::SigV4(_) | ApiError::UnknownAccessKey | ApiError::UnknownRegion(_) | ApiError::WrongService(_) => {
            (StatusCode::FORBIDDEN, "AccessDeniedException", e.to_string(), Some("UNAUTHORIZED_ACCOUNT"))
        }
        ApiError::Core(c) => match c {
            CoreError::NotFound { .. } => {
                (StatusCode::NOT_FOUND, "ResourceNotFoundException", c.to_string(), Some("SNAPSHOT_NOT_FOUND"))
            }
            CoreError::Malformed { .. } => validation(c.to_string(), "INVALID_SNAPSHOT_ID"),
            CoreError::NotOwner(_) => {
                (StatusCode::FORBIDDEN, "AccessDeniedException", c.to_string(), Some("UNAUTHORIZED_ACCOUNT"))
            }
            CoreError::IncorrectState(_) => validation(c.to_string(), "INVALID_SNAPSHOT_STATE"),
            CoreError::InvalidNextToken(_) => validation(c.to_string(), "INVALID_PAGE_TOKEN"),
            CoreError::IdempotentParameterMismatch(_) => {
                (StatusCode::CONFLICT, "ConflictException", c.to_string(), None)
            }
            CoreError::InvalidBlockArgument { argument, .. } => validation(
                c.to_string(),
                match argument {
                    BlockArgument::Token => "INVALID_BLOCK_TOKEN",
                    BlockArgument::Index => "INVALID_BLOCK",
                    BlockArgument::VolumeSize => "INVALID_VOLUME_SIZE",
                    BlockArgument::ChangedBlocksCount => "INVALID_CHANGED_BLOCKS_COUNT",
                },
            ),
            CoreError::InvalidParameterValue(_) | CoreError::MissingParameter(_) => {
                validation(c.to_string(), "INVALID_PARAMETER_VALUE")
            }
            _ if e.is_internal() => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerException",
                "An internal error has occurred".into(),
                None,
            ),
            _ => validation(c.to_string(), "INVALID_PARAMETER_VALUE"),
        },
        ApiError::Protocol(p) => validation(p.to_string(), "INVALID_PARAMETER_VALUE"),
        ApiError::BodyTooLarge(_) => validation(e.to_string(), "INVALID_BLOCK"),
        ApiError::DryRun | ApiError::Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerException",
            "An internal error has occurred".into(),
            None,
        ),
    }
}

fn error_response(e: &ApiError, request_id: &str) -> Response {
    let (status, kind, message, reason) = to_ebs_error(e);
    if e.is_internal() {
        tracing::warn!(error = %e, "internal error");
    }
    let mut body = json!({ "Message": message });
    if let Some(r) = reason {
        body["Reason"] = json!(r);
    }
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert("content-type", "application/json".parse().expect("static header"));
    h.insert("x-amzn-errortype", kind.parse().expect("static header"));
    if let Ok(v) = request_id.parse() {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::Core(CoreError::InvalidParameterValue(m.into()))
}

fn block_arg(argument: BlockArgument, m: impl Into<String>) -> ApiError {
    ApiError::Core(CoreError::InvalidBlockArgument { argument, message: m.into() })
}

/// Reads the body, verifies SigV4 for service `ebs`, then runs `f` on a blocking thread.
async fn run(
    state: Arc<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
    f: impl FnOnce(&Kiln, Call) -> Result<Response, ApiError> + Send + 'static,
) -> Response {
    run_as("ebs", error_response, state, method, uri, headers, body, f).await
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn epoch(rfc3339: &str) -> f64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map(|t| t.timestamp_millis() as f64 / 1000.0).unwrap_or(0.0)
}

fn sha256_b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data))
}

/// Decodes a StartSnapshot body (untrusted JSON).
pub fn start_snapshot_spec(body: &[u8]) -> Result<StartSpec, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(format!("The request body is not valid JSON: {e}")))?;
    let volume_size =
        v["VolumeSize"].as_i64().ok_or_else(|| ApiError::Core(CoreError::MissingParameter("VolumeSize".into())))?;
    let tags = match v.get("Tags").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .map(|t| {
                Ok(Tag {
                    key: t["Key"].as_str().ok_or_else(|| bad("Each tag needs a Key"))?.to_string(),
                    value: t["Value"].as_str().unwrap_or("").to_string(),
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?,
        None => vec![],
    };
    Ok(StartSpec {
        volume_size,
        parent_snapshot_id: v["ParentSnapshotId"].as_str().map(str::to_string),
        description: v["Description"].as_str().map(str::to_string),
        tags,
        client_token: v["ClientToken"].as_str().map(str::to_string),
        encrypted: v["Encrypted"].as_bool().unwrap_or(false),
    })
}

/// Checks a PutSnapshotBlock's index, length and checksum headers against its body; returns
/// the block index and the body's checksum.
pub fn put_block_args(index: &str, headers: &HeaderMap, body: &[u8]) -> Result<(u64, String), ApiError> {
    let index: u64 =
        index.parse().map_err(|_| block_arg(BlockArgument::Index, format!("Block index {index:?} is not a number")))?;
    let length: usize = header(headers, "x-amz-data-length")
        .ok_or_else(|| ApiError::Core(CoreError::MissingParameter("x-amz-Data-Length".into())))?
        .parse()
        .map_err(|_| bad("x-amz-Data-Length is not a number"))?;
    if length != body.len() {
        return Err(bad(format!("x-amz-Data-Length is {length} but the body has {} bytes", body.len())));
    }
    let algorithm = header(headers, "x-amz-checksum-algorithm").unwrap_or("");
    if algorithm != "SHA256" {
        return Err(bad("x-amz-Checksum-Algorithm must be SHA256"));
    }
    let checksum = header(headers, "x-amz-checksum")
        .ok_or_else(|| ApiError::Core(CoreError::MissingParameter("x-amz-Checksum".into())))?;
    let actual = sha256_b64(body);
    if checksum != actual {
        return Err(ApiError::Core(CoreError::InvalidParameterValue(
            "The checksum of the block data does not match x-amz-Checksum (INVALID_CHECKSUM).".into(),
        )));
    }
    Ok((index, actual))
}

/// Reads CompleteSnapshot's `x-amz-ChangedBlocksCount`.
pub fn changed_blocks_count(headers: &HeaderMap) -> Result<i64, ApiError> {
    let count: i64 = header(headers, "x-amz-changedblockscount")
        .ok_or_else(|| ApiError::Core(CoreError::MissingParameter("x-amz-ChangedBlocksCount".into())))?
        .parse()
        .map_err(|_| block_arg(BlockArgument::ChangedBlocksCount, "x-amz-ChangedBlocksCount is not a number"))?;
    Ok(count)
}

async fn start_snapshot(
    State(s): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run(s, method, uri, headers, body, |kiln, call| {
        let spec = start_snapshot_spec(&call.body)?;
        let snap = kiln.ebs_start_snapshot(&call.ctx, &spec)?;
        let mut out = json!({
            "SnapshotId": snap.id,
            "OwnerId": snap.account,
            "Status": snap.data.state,
            "StartTime": epoch(&snap.data.start_time),
            "VolumeSize": snap.data.volume_size,
            "BlockSize": kiln_chunks::BLOCK_SIZE,
            "Description": snap.data.description,
            "Tags": snap.tags.iter().map(|t| json!({"Key": t.key, "Value": t.value})).collect::<Vec<_>>(),
        });
        if let Some(p) = &snap.data.parent_snapshot_id {
            out["ParentSnapshotId"] = json!(p);
        }
        Ok(json_response(StatusCode::CREATED, out))
    })
    .await
}

async fn put_block(
    State(s): State<Arc<AppState>>,
    Path((id, index)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run(s, method, uri, headers, body, move |kiln, call| {
        kiln_core::storage::ebs::check_id(&id)?;
        let (index, actual) = put_block_args(&index, &call.headers, &call.body)?;
        kiln.ebs_put_block(&call.ctx, &id, index, &call.body)?;
        let mut resp = StatusCode::CREATED.into_response();
        let h = resp.headers_mut();
        h.insert("x-amz-checksum", actual.parse().map_err(|_| ApiError::Internal("checksum header".into()))?);
        h.insert("x-amz-checksum-algorithm", "SHA256".parse().expect("static header"));
        Ok(resp)
    })
    .await
}

async fn complete_snapshot(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run(s, method, uri, headers, body, move |kiln, call| {
        kiln_core::storage::ebs::check_id(&id)?;
        let count = changed_blocks_count(&call.headers)?;
        kiln.ebs_complete(&call.ctx, &id, count)?;
        Ok(json_response(StatusCode::ACCEPTED, json!({ "Status": "completed" })))
    })
    .await
}

/// Reads ListSnapshotBlocks/ListChangedBlocks paging arguments from the query string.
pub fn page_args(q: &HashMap<String, String>) -> Result<(u64, usize, Option<String>), ApiError> {
    let start = match q.get("startingBlockIndex") {
        Some(v) => v.parse().map_err(|_| bad("startingBlockIndex is not a number"))?,
        None => 0,
    };
    let max = match q.get("maxResults") {
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (100..=10000).contains(n))
            .ok_or_else(|| bad("maxResults must be 100-10000"))?,
        None => 10000,
    };
    Ok((start, max, q.get("pageToken").cloned()))
}

fn page_json(page: BlockPage, changed: bool) -> Value {
    let expiry = chrono::Utc::now().timestamp() as f64 + 7.0 * 86400.0;
    let blocks: Vec<Value> = page
        .blocks
        .iter()
        .map(|b| {
            if changed {
                let mut v = json!({ "BlockIndex": b.index });
                if let Some(t) = &b.first_token {
                    v["FirstBlockToken"] = json!(t);
                }
                if let Some(t) = &b.token {
                    v["SecondBlockToken"] = json!(t);
                }
                v
            } else {
                json!({ "BlockIndex": b.index, "BlockToken": b.token })
            }
        })
        .collect();
    let mut out = json!({
        "ExpiryTime": expiry,
        "VolumeSize": page.volume_size,
        "BlockSize": kiln_chunks::BLOCK_SIZE,
    });
    out[if changed { "ChangedBlocks" } else { "Blocks" }] = Value::Array(blocks);
    if let Some(n) = page.next {
        out["NextToken"] = json!(n);
    }
    out
}

async fn list_blocks(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run(s, method, uri, headers, body, move |kiln, call| {
        kiln_core::storage::ebs::check_id(&id)?;
        let (start, max, token) = page_args(&q)?;
        let page = kiln.ebs_list_blocks(&call.ctx, &id, start, max, token.as_deref())?;
        Ok(json_response(StatusCode::OK, page_json(page, false)))
    })
    .await
}

async fn changed_blocks(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run(s, method, uri, headers, body, move |kiln, call| {
        kiln_core::storage::ebs::check_id(&id)?;
        let first = q.get("firstSnapshotId").cloned();
        if let Some(f) = &first {
            kiln_core::storage::ebs::check_id(f)?;
        }
        let (start, max, token) = page_args(&q)?;
        let page = kiln.ebs_changed_blocks(&call.ctx, first.as_deref(), &id, start, max, token.as_deref())?;
        Ok(json_response(StatusCode::OK, page_json(page, true)))
    })
    .await
}

async fn get_block(
    State(s): State<Arc<AppState>>,
    Path((id, index)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run(s, method, uri, headers, body, move |kiln, call| {
        kiln_core::storage::ebs::check_id(&id)?;
        let index: u64 = index
            .parse()
            .map_err(|_| block_arg(BlockArgument::Index, format!("Block index {index:?} is not a number")))?;
        let token =
            q.get("blockToken").ok_or_else(|| ApiError::Core(CoreError::MissingParameter("blockToken".into())))?;
        let data = kiln.ebs_get_block(&call.ctx, &id, index, token)?;
        let checksum = sha256_b64(&data);
        let len = data.len();
        let mut resp = (StatusCode::OK, data).into_response();
        let h = resp.headers_mut();
        h.insert("content-type", "application/octet-stream".parse().expect("static header"));
        h.insert("x-amz-data-length", len.to_string().parse().expect("number header"));
        h.insert("x-amz-checksum", checksum.parse().map_err(|_| ApiError::Internal("checksum header".into()))?);
        h.insert("x-amz-checksum-algorithm", "SHA256".parse().expect("static header"));
        Ok(resp)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(e: CoreError) -> Option<&'static str> {
        to_ebs_error(&ApiError::Core(e)).3
    }

    #[test]
    fn reasons_come_from_the_typed_argument_not_the_message() {
        let arg = |argument, message: &str| CoreError::InvalidBlockArgument { argument, message: message.into() };
        assert_eq!(reason(arg(BlockArgument::Token, "anything")), Some("INVALID_BLOCK_TOKEN"));
        assert_eq!(reason(arg(BlockArgument::Index, "anything")), Some("INVALID_BLOCK"));
        assert_eq!(reason(arg(BlockArgument::VolumeSize, "anything")), Some("INVALID_VOLUME_SIZE"));
        assert_eq!(reason(arg(BlockArgument::ChangedBlocksCount, "anything")), Some("INVALID_CHANGED_BLOCKS_COUNT"));
        // A message that happens to mention a token or a block index is just a bad value.
        let plain = CoreError::InvalidParameterValue("the block token and Block index VolumeSize".into());
        assert_eq!(reason(plain), Some("INVALID_PARAMETER_VALUE"));
    }

    #[test]
    fn decoders_name_the_argument() {
        let bad_index = put_block_args("x", &HeaderMap::new(), b"").unwrap_err();
        assert_eq!(to_ebs_error(&bad_index).3, Some("INVALID_BLOCK"));
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-changedblockscount", "many".parse().unwrap());
        let bad_count = changed_blocks_count(&headers).unwrap_err();
        assert_eq!(to_ebs_error(&bad_count).3, Some("INVALID_CHANGED_BLOCKS_COUNT"));
    }
}
