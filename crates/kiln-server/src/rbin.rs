//! The Recycle Bin's retention rules over REST-JSON (service `rbin`, API 2021-06-15), so
//! boto3's `rbin` client works unchanged: `CreateRule`, `ListRules`, `GetRule`, `DeleteRule`.
//!
//! Errors use the service's envelope: an `x-amzn-ErrorType` header and a JSON body with
//! `Message` and, where the model has one, `Reason` (`ValidationException` 400,
//! `ResourceNotFoundException` 404, `InternalServerException` 500). Rules are region-level:
//! resource tags are stored and narrow the rule, lock configurations are not supported, and
//! `ListRules` answers in one page.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use kiln_core::storage::recycle_bin::RetentionRule;
use kiln_core::CoreError;
use kiln_types::Tag;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::rest::{json_response, run_as};
use crate::state::AppState;

/// Routes of the `rbin` API.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/rules", post(create_rule))
        .route("/list-rules", post(list_rules))
        .route("/rules/{identifier}", get(get_rule).delete(delete_rule))
}

fn rbin_error(status: StatusCode, kind: &str, message: &str, reason: Option<&str>, request_id: &str) -> Response {
    let mut body = json!({ "Message": message });
    if let Some(r) = reason {
        body["Reason"] = json!(r);
    }
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert("content-type", "application/json".parse().expect("static header"));
    if let Ok(v) = kind.parse() {
        h.insert("x-amzn-errortype", v);
    }
    if let Ok(v) = request_id.parse() {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

/// The one mapping from errors to `rbin`'s envelope.
fn error_response(e: &ApiError, request_id: &str) -> Response {
    let validation = |m: String| (StatusCode::BAD_REQUEST, "ValidationException", m, Some("INVALID_PARAMETER_VALUE"));
    let (status, kind, message, reason) = match e {
        ApiError::UnknownAccessKey => (StatusCode::FORBIDDEN, "UnrecognizedClientException", e.to_string(), None),
        ApiError::SigV4(_) => (StatusCode::FORBIDDEN, "InvalidSignatureException", e.to_string(), None),
        ApiError::UnknownRegion(_) | ApiError::WrongService(_) => {
            (StatusCode::FORBIDDEN, "AccessDeniedException", e.to_string(), None)
        }
        _ if e.is_internal() => {
            tracing::warn!(error = %e, "internal error");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerException",
                "An internal error has occurred".into(),
                None,
            )
        }
        ApiError::DryRun => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerException",
            "An internal error has occurred".into(),
            None,
        ),
        _ => validation(e.to_string()),
    };
    rbin_error(status, kind, &message, reason, request_id)
}

fn not_found(id: &str) -> Response {
    rbin_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        &format!("Rule {id} does not exist."),
        Some("RULE_NOT_FOUND"),
        "",
    )
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::Core(CoreError::InvalidParameterValue(m.into()))
}

fn tags_json(tags: &[Tag]) -> Value {
    tags.iter().map(|t| json!({"Key": t.key, "Value": t.value})).collect()
}

fn retention_json(r: &RetentionRule) -> Value {
    json!({"RetentionPeriodValue": r.retention_days, "RetentionPeriodUnit": "DAYS"})
}

fn rule_json(r: &RetentionRule) -> Value {
    json!({
        "Identifier": r.identifier,
        "Description": r.description,
        "ResourceType": r.resource_type,
        "RetentionPeriod": retention_json(r),
        "ResourceTags": r.resource_tags.iter()
            .map(|(k, v)| json!({"ResourceTagKey": k, "ResourceTagValue": v}))
            .collect::<Vec<_>>(),
        "Status": "available",
        "LockState": "unlocked",
        "RuleArn": r.arn(),
    })
}

fn body_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| bad(format!("The request body is not valid JSON: {e}")))
}

/// A CreateRule body, decoded.
#[derive(Debug)]
pub struct CreateRule {
    pub resource_type: String,
    pub value: i64,
    pub unit: String,
    pub description: Option<String>,
    pub resource_tags: Vec<(String, String)>,
    pub tags: Vec<Tag>,
}

/// Decodes a CreateRule body (untrusted JSON).
pub fn create_rule_request(body: &[u8]) -> Result<CreateRule, ApiError> {
    let v = body_json(body)?;
    let resource_type = v["ResourceType"].as_str().ok_or_else(|| bad("ResourceType is required."))?;
    let period = &v["RetentionPeriod"];
    let value = period["RetentionPeriodValue"].as_i64().ok_or_else(|| bad("RetentionPeriodValue is required."))?;
    let unit = period["RetentionPeriodUnit"].as_str().unwrap_or("DAYS");
    if v.get("LockConfiguration").is_some_and(|l| !l.is_null()) {
        return Err(bad("Rule locks are not supported by this server."));
    }
    if v["ExcludeResourceTags"].as_array().is_some_and(|a| !a.is_empty()) {
        return Err(bad("ExcludeResourceTags is not supported by this server."));
    }
    let resource_tags = v["ResourceTags"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    let key = t["ResourceTagKey"].as_str().ok_or_else(|| bad("Each resource tag needs a key."))?;
                    Ok((key.to_string(), t["ResourceTagValue"].as_str().unwrap_or("").to_string()))
                })
                .collect::<Result<Vec<_>, ApiError>>()
        })
        .transpose()?
        .unwrap_or_default();
    let tags = v["Tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    Ok(Tag {
                        key: t["Key"].as_str().ok_or_else(|| bad("Each tag needs a Key."))?.to_string(),
                        value: t["Value"].as_str().unwrap_or("").to_string(),
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(CreateRule {
        resource_type: resource_type.to_string(),
        value,
        unit: unit.to_string(),
        description: v["Description"].as_str().map(str::to_string),
        resource_tags,
        tags,
    })
}

/// Decodes a ListRules body: the resource type it lists.
pub fn list_rules_request(body: &[u8]) -> Result<String, ApiError> {
    let v = body_json(body)?;
    Ok(v["ResourceType"].as_str().ok_or_else(|| bad("ResourceType is required."))?.to_string())
}

async fn create_rule(
    State(s): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run_as("rbin", error_response, s, method, uri, headers, body, |kiln, call| {
        let r = create_rule_request(&call.body)?;
        let rule = kiln.create_retention_rule(
            &call.ctx,
            &r.resource_type,
            r.value,
            &r.unit,
            r.description.as_deref(),
            r.resource_tags,
            r.tags,
        )?;
        let mut out = rule_json(&rule);
        out["Tags"] = tags_json(&rule.tags);
        Ok(json_response(StatusCode::CREATED, out))
    })
    .await
}

async fn list_rules(
    State(s): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run_as("rbin", error_response, s, method, uri, headers, body, |kiln, call| {
        let resource_type = list_rules_request(&call.body)?;
        let rules = kiln.list_retention_rules(&call.ctx, &resource_type)?;
        let summaries: Vec<Value> = rules
            .iter()
            .map(|r| {
                json!({
                    "Identifier": r.identifier,
                    "Description": r.description,
                    "RetentionPeriod": retention_json(r),
                    "LockState": "unlocked",
                    "RuleArn": r.arn(),
                })
            })
            .collect();
        Ok(json_response(StatusCode::OK, json!({ "Rules": summaries })))
    })
    .await
}

async fn get_rule(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run_as("rbin", error_response, s, method, uri, headers, body, move |kiln, call| {
        Ok(match kiln.retention_rule(&call.ctx, &id)? {
            Some(rule) => json_response(StatusCode::OK, rule_json(&rule)),
            None => not_found(&id),
        })
    })
    .await
}

async fn delete_rule(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run_as("rbin", error_response, s, method, uri, headers, body, move |kiln, call| {
        Ok(if kiln.delete_retention_rule(&call.ctx, &id)? {
            StatusCode::NO_CONTENT.into_response()
        } else {
            not_found(&id)
        })
    })
    .await
}
