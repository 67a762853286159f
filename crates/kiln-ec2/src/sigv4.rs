//! AWS Signature Version 4: verification of incoming requests, and signing for tests and clients.
//!
//! Follows the rules AWS applies to its non-S3 services (EC2 among them): the request path is
//! normalised and then encoded a second time, query parameters are decoded and re-encoded, and
//! the payload hash comes from `x-amz-content-sha256` when present, else from the body.

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode, percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The only signing algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The `x-amz-content-sha256` value a client uses to leave the body out of the signature.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// How far a header-form request's date may be from the server clock, either way.
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;
/// The longest validity a presigned request may claim (seven days), as AWS enforces.
pub const MAX_PRESIGNED_EXPIRES_SECS: u64 = 604_800;

/// The credential scope terminator every SigV4 scope must end with.
const TERMINATOR: &str = "aws4_request";
/// Format of `X-Amz-Date` and of the date line in the string to sign.
const AMZ_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// RFC 3986 unreserved characters stay as they are; everything else is percent-encoded.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// Bound on how much client-supplied text is echoed back in an error message.
const ECHO_LIMIT: usize = 64;

/// What the HTTP layer hands over. Header names may be any case; duplicates allowed.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    /// HTTP method, e.g. "GET" or "POST".
    pub method: &'a str,
    /// Raw path as received, e.g. "/" (not decoded).
    pub path: &'a str,
    /// Raw query string without '?', may be "".
    pub query: &'a str,
    /// Header (name, value) pairs in the order received.
    pub headers: &'a [(String, String)],
    /// Request body bytes.
    pub body: &'a [u8],
}

/// Where the signature was carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthForm {
    /// `Authorization: AWS4-HMAC-SHA256 ...` header.
    Header,
    /// `X-Amz-*` query parameters (a presigned URL).
    Presigned,
}

/// The claims of a signed request, before the secret is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuth {
    /// Where the signature was carried.
    pub form: AuthForm,
    /// Access key id from the credential scope; the caller looks the secret up by it.
    pub access_key_id: String,
    /// Credential scope date, yyyymmdd.
    pub scope_date: String,
    /// Credential scope region.
    pub region: String,
    /// Credential scope service.
    pub service: String,
    /// Signed header names, lowercase, as listed.
    pub signed_headers: Vec<String>,
    /// Claimed signature, lowercase hex.
    pub signature: String,
    /// Request time from X-Amz-Date (header or query) or the Date header.
    pub amz_date: DateTime<Utc>,
    /// Presigned X-Amz-Expires.
    pub expires_secs: Option<u64>,
}

/// Why a request failed authentication. Messages never contain secrets or computed signatures.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SigV4Error {
    /// No Authorization header and no X-Amz-Algorithm in the query.
    #[error("Request is missing Authentication Token")]
    Missing,
    /// Unparseable or incomplete authentication information.
    #[error("{0}")]
    Malformed(String),
    /// An algorithm other than AWS4-HMAC-SHA256.
    #[error("The authorization mechanism you have provided ('{0}') is not supported. Please use AWS4-HMAC-SHA256.")]
    UnsupportedAlgorithm(String),
    /// The signature does not match the one computed from the request and secret.
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")]
    SignatureMismatch,
    /// The request date is outside the accepted window.
    #[error("{0}")]
    Expired(String),
    /// The credential scope disagrees with the request date, or has a bad terminator.
    #[error("{0}")]
    ScopeMismatch(String),
}

impl SigV4Error {
    /// The EC2 error code to report for this error.
    pub fn code(&self) -> &'static str {
        match self {
            SigV4Error::Missing => "MissingAuthenticationToken",
            SigV4Error::Malformed(_) | SigV4Error::UnsupportedAlgorithm(_) => "IncompleteSignature",
            SigV4Error::SignatureMismatch | SigV4Error::ScopeMismatch(_) => "SignatureDoesNotMatch",
            SigV4Error::Expired(_) => "RequestExpired",
        }
    }
}

/// Everything needed to sign a request besides the request itself.
///
/// Deliberately not `Debug`, so the secret cannot end up in logs by accident.
pub struct SigningParams<'a> {
    /// Access key id placed in the credential scope.
    pub access_key_id: &'a str,
    /// Secret access key.
    pub secret: &'a str,
    /// Request time, yyyymmddThhmmssZ.
    pub amz_date: &'a str,
    /// Credential scope region.
    pub region: &'a str,
    /// Credential scope service.
    pub service: &'a str,
    /// Header names to sign; must include "host".
    pub signed_headers: &'a [String],
}

/// Reads the authentication claims from a request without needing the secret.
pub fn parse(req: &HttpRequest) -> Result<ParsedAuth, SigV4Error> {
    let auth_headers: Vec<&str> = header_values(req.headers, "authorization").collect();
    let query = decode_query(req.query);
    let presigned = query.iter().any(|(k, _)| k == b"X-Amz-Algorithm");
    match (auth_headers.as_slice(), presigned) {
        ([], false) => Err(SigV4Error::Missing),
        ([], true) => parse_presigned(&query),
        ([value], false) => parse_header(req, value),
        (_, true) => Err(malformed(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
             Signature query string parameter or the Authorization header should be specified",
        )),
        (_, false) => Err(malformed("Only one Authorization header is allowed.")),
    }
}

/// Checks the request's signature against `secret_access_key` and its date against `now`.
pub fn verify(
    req: &HttpRequest,
    auth: &ParsedAuth,
    secret_access_key: &str,
    now: DateTime<Utc>,
) -> Result<(), SigV4Error> {
    check_time(auth, now)?;
    for name in &auth.signed_headers {
        if header_values(req.headers, name).next().is_none() {
            return Err(SigV4Error::Malformed(format!(
                "The request is missing header '{}', which is listed in SignedHeaders.",
                clip(name)
            )));
        }
    }
    let payload_hash = verified_payload_hash(req)?;
    let creq = canonical_request(req, &auth.signed_headers, &payload_hash, auth.form == AuthForm::Presigned);
    let scope = credential_scope(&auth.scope_date, &auth.region, &auth.service);
    let sts = string_to_sign(&format_amz_date(auth.amz_date), &scope, &creq);
    let given = hex::decode(&auth.signature).map_err(|_| SigV4Error::SignatureMismatch)?;
    let key = signing_key(secret_access_key, &auth.scope_date, &auth.region, &auth.service);
    // Mac::verify_slice compares in constant time, so timing reveals nothing about the expected value.
    new_mac(&key).chain_update(sts.as_bytes()).verify_slice(&given).map_err(|_| SigV4Error::SignatureMismatch)
}

/// Build the canonical request string (exposed for tests / debugging).
pub fn canonical_request(req: &HttpRequest, signed_headers: &[String], payload_hash: &str, presigned: bool) -> String {
    let names = canonical_header_names(signed_headers);
    let mut out = String::with_capacity(256);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&canonical_uri(req.path));
    out.push('\n');
    out.push_str(&canonical_query(req.query, presigned));
    out.push('\n');
    for name in &names {
        let values: Vec<String> = header_values(req.headers, name).map(normalize_header_value).collect();
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&names.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// Builds the string to sign from the request time, credential scope and canonical request.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical_request.as_bytes())))
}

/// Derives the per-day, per-region, per-service signing key from the secret.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, TERMINATOR.as_bytes())
}

/// Sign a request with the Authorization header form; returns the header value. Used by tests and the CLI.
pub fn sign_header(
    req: &HttpRequest,
    access_key_id: &str,
    secret: &str,
    amz_date: &str,
    region: &str,
    service: &str,
    signed_headers: &[String],
) -> String {
    let date = scope_date_of(amz_date);
    let scope = credential_scope(date, region, service);
    let creq = canonical_request(req, signed_headers, &client_payload_hash(req), false);
    let signature = sign(&creq, secret, amz_date, region, service);
    format!(
        "{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={}, Signature={signature}",
        canonical_header_names(signed_headers).join(";")
    )
}

/// Presigns a request; returns the full query string (the request's own query plus the X-Amz-* parameters).
pub fn presign_query(req: &HttpRequest, params: &SigningParams, expires_secs: u64) -> String {
    let date = scope_date_of(params.amz_date);
    let scope = credential_scope(date, params.region, params.service);
    let credential = format!("{}/{scope}", params.access_key_id);
    let signed = canonical_header_names(params.signed_headers).join(";");
    let auth_params = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", credential.as_str()),
        ("X-Amz-Date", params.amz_date),
        ("X-Amz-Expires", &expires_secs.to_string()),
        ("X-Amz-SignedHeaders", signed.as_str()),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", encode(v.as_bytes())))
    .collect::<Vec<_>>()
    .join("&");
    let query = if req.query.is_empty() { auth_params } else { format!("{}&{auth_params}", req.query) };
    let unsigned = HttpRequest { query: &query, ..*req };
    let creq = canonical_request(&unsigned, params.signed_headers, &client_payload_hash(req), true);
    let signature = sign(&creq, params.secret, params.amz_date, params.region, params.service);
    format!("{query}&X-Amz-Signature={signature}")
}

fn parse_header(req: &HttpRequest, value: &str) -> Result<ParsedAuth, SigV4Error> {
    let value = value.trim();
    let (algorithm, rest) = value.split_once(|c: char| c.is_ascii_whitespace()).unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(SigV4Error::UnsupportedAlgorithm(clip(algorithm)));
    }
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, val) = part.split_once('=').ok_or_else(|| {
            SigV4Error::Malformed(format!(
                "Authorization header component '{}' is not of the form key=value.",
                clip(part)
            ))
        })?;
        let slot = match key.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            other => {
                return Err(SigV4Error::Malformed(format!("Unknown Authorization header component '{}'.", clip(other))))
            }
        };
        if slot.replace(val.trim()).is_some() {
            return Err(SigV4Error::Malformed(format!(
                "Authorization header component '{}' appears more than once.",
                clip(key.trim())
            )));
        }
    }
    let missing: Vec<String> = [
        ("Credential", credential.is_none()),
        ("SignedHeaders", signed_headers.is_none()),
        ("Signature", signature.is_none()),
    ]
    .iter()
    .filter(|(_, absent)| *absent)
    .map(|(name, _)| format!("Authorization header requires '{name}' parameter."))
    .collect();
    let (Some(credential), Some(signed_headers), Some(signature)) = (credential, signed_headers, signature) else {
        return Err(SigV4Error::Malformed(missing.join(" ")));
    };
    let amz_date = header_date(req)?;
    build_auth(AuthForm::Header, credential, signed_headers, signature, amz_date, None)
}

fn parse_presigned(query: &[(Vec<u8>, Vec<u8>)]) -> Result<ParsedAuth, SigV4Error> {
    let algorithm = query_param(query, "X-Amz-Algorithm")?.unwrap_or_default();
    if algorithm != ALGORITHM {
        return Err(SigV4Error::UnsupportedAlgorithm(clip(&algorithm)));
    }
    let credential = query_param(query, "X-Amz-Credential")?;
    let date = query_param(query, "X-Amz-Date")?;
    let expires = query_param(query, "X-Amz-Expires")?;
    let signed_headers = query_param(query, "X-Amz-SignedHeaders")?;
    let signature = query_param(query, "X-Amz-Signature")?;
    let (Some(credential), Some(date), Some(expires), Some(signed_headers), Some(signature)) =
        (credential, date, expires, signed_headers, signature)
    else {
        return Err(malformed(
            "AWS query-string parameters must include 'X-Amz-Algorithm', 'X-Amz-Credential', \
             'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-SignedHeaders', and 'X-Amz-Expires'. \
             Re-examine the query-string parameters.",
        ));
    };
    let expires: u64 = expires.trim().parse().map_err(|_| malformed("X-Amz-Expires should be a number"))?;
    let amz_date = parse_amz_date(date.trim())
        .ok_or_else(|| malformed("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""))?;
    build_auth(AuthForm::Presigned, credential.trim(), signed_headers.trim(), signature.trim(), amz_date, Some(expires))
}

/// Validates and assembles the parts common to both forms.
fn build_auth(
    form: AuthForm,
    credential: &str,
    signed_headers: &str,
    signature: &str,
    amz_date: DateTime<Utc>,
    expires_secs: Option<u64>,
) -> Result<ParsedAuth, SigV4Error> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, scope_date, region, service, terminator] = parts.as_slice() else {
        return Err(malformed(
            "Credential must have the form <AccessKeyId>/<yyyymmdd>/<region>/<service>/aws4_request.",
        ));
    };
    if access_key_id.is_empty() || region.is_empty() || service.is_empty() {
        return Err(malformed(
            "Credential must have the form <AccessKeyId>/<yyyymmdd>/<region>/<service>/aws4_request.",
        ));
    }
    if *terminator != TERMINATOR {
        return Err(SigV4Error::ScopeMismatch(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
            clip(terminator)
        )));
    }
    if scope_date.len() != 8 || !scope_date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SigV4Error::Malformed(format!(
            "Invalid credential date '{}': expected yyyyMMdd.",
            clip(scope_date)
        )));
    }
    let request_day = amz_date.format("%Y%m%d").to_string();
    if *scope_date != request_day {
        return Err(SigV4Error::ScopeMismatch(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{scope_date}' != '{request_day}', from '{}'.",
            format_amz_date(amz_date)
        )));
    }

    let signed: Vec<String> = signed_headers.split(';').map(|h| h.trim().to_ascii_lowercase()).collect();
    if signed.iter().any(|h| h.is_empty() || !is_token(h)) {
        return Err(malformed("SignedHeaders must be a non-empty ';'-separated list of header names."));
    }
    if !signed.iter().any(|h| h == "host") {
        return Err(malformed("'Host' must be a 'SignedHeader' in the AWS Authorization."));
    }

    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("Signature must be 64 hexadecimal characters."));
    }

    Ok(ParsedAuth {
        form,
        access_key_id: (*access_key_id).to_string(),
        scope_date: (*scope_date).to_string(),
        region: (*region).to_string(),
        service: (*service).to_string(),
        signed_headers: signed,
        signature: signature.to_ascii_lowercase(),
        amz_date,
        expires_secs,
    })
}

/// The header form's date: X-Amz-Date when present, else the HTTP Date header.
fn header_date(req: &HttpRequest) -> Result<DateTime<Utc>, SigV4Error> {
    if let Some(value) = single_header(req.headers, "x-amz-date")? {
        return parse_amz_date(value.trim())
            .ok_or_else(|| malformed("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""));
    }
    if let Some(value) = single_header(req.headers, "date")? {
        return DateTime::parse_from_rfc2822(value.trim())
            .map(|d| d.with_timezone(&Utc))
            .map_err(|_| malformed("The Date header is not a valid RFC 1123 date."));
    }
    Err(malformed("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."))
}

fn check_time(auth: &ParsedAuth, now: DateTime<Utc>) -> Result<(), SigV4Error> {
    let skew = TimeDelta::seconds(MAX_CLOCK_SKEW_SECS);
    match auth.form {
        AuthForm::Header => {
            let age = now.signed_duration_since(auth.amz_date);
            if age > skew {
                return Err(SigV4Error::Expired(format!(
                    "Signature expired: {} is now earlier than {} ({} - 15 min.)",
                    format_amz_date(auth.amz_date),
                    format_amz_date(now - skew),
                    format_amz_date(now)
                )));
            }
            if age < -skew {
                return Err(SigV4Error::Expired(format!(
                    "Signature not yet current: {} is still later than {} ({} + 15 min.)",
                    format_amz_date(auth.amz_date),
                    format_amz_date(now + skew),
                    format_amz_date(now)
                )));
            }
        }
        AuthForm::Presigned => {
            let expires = auth.expires_secs.unwrap_or(0);
            if expires > MAX_PRESIGNED_EXPIRES_SECS {
                return Err(expired("X-Amz-Expires must be less than a week (in seconds) that is 604800"));
            }
            // `expires` is at most a week here, so the conversion and addition cannot overflow.
            let until = auth.amz_date + TimeDelta::seconds(expires as i64);
            if now > until {
                return Err(expired("Request has expired"));
            }
            if auth.amz_date > now + skew {
                return Err(expired("Request is not valid yet"));
            }
        }
    }
    Ok(())
}

/// The payload hash a verifier may use, refusing a claimed hash that the body contradicts.
fn verified_payload_hash(req: &HttpRequest) -> Result<String, SigV4Error> {
    let body_hash = hex::encode(Sha256::digest(req.body));
    let Some(claimed) = single_header(req.headers, "x-amz-content-sha256")? else {
        return Ok(body_hash);
    };
    let claimed = claimed.trim();
    if claimed == UNSIGNED_PAYLOAD {
        return Ok(claimed.to_string());
    }
    if claimed.len() != 64 || !claimed.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a hex SHA-256 digest."));
    }
    // Trusting a claimed hash without checking it would leave the body unauthenticated.
    if !claimed.eq_ignore_ascii_case(&body_hash) {
        return Err(SigV4Error::SignatureMismatch);
    }
    Ok(claimed.to_string())
}

/// The payload hash a signer uses: the header a client already set, else the body's hash.
fn client_payload_hash(req: &HttpRequest) -> String {
    match header_values(req.headers, "x-amz-content-sha256").next() {
        Some(v) => v.trim().to_string(),
        None => hex::encode(Sha256::digest(req.body)),
    }
}

fn sign(creq: &str, secret: &str, amz_date: &str, region: &str, service: &str) -> String {
    let date = scope_date_of(amz_date);
    let sts = string_to_sign(amz_date, &credential_scope(date, region, service), creq);
    hex::encode(hmac(&signing_key(secret, date, region, service), sts.as_bytes()))
}

fn canonical_uri(path: &str) -> String {
    normalize_path(path).split('/').map(|segment| encode(segment.as_bytes())).collect::<Vec<_>>().join("/")
}

/// Removes empty and dot segments the way the AWS SDKs do before signing.
///
/// The SDKs (botocore's `normpath`, smithy-rs) drop the trailing slash left by a final `..`,
/// unlike RFC 3986, and the server must agree with what clients signed.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut out = format!("/{}", segments.join("/"));
    if path.ends_with('/') && !out.ends_with('/') {
        out.push('/');
    }
    out
}

fn canonical_query(query: &str, presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = decode_query(query)
        .into_iter()
        .filter(|(k, _)| !(presigned && k == b"X-Amz-Signature"))
        .map(|(k, v)| (encode(&k), encode(&v)))
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// Splits a raw query into decoded (key, value) byte pairs; keys without '=' get an empty value.
///
/// Bytes rather than strings, so that invalid UTF-8 re-encodes to exactly what the client sent.
fn decode_query(query: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Form-style decoding: '+' is a space, as clients that build queries with form encoding mean it.
fn decode(s: &str) -> Vec<u8> {
    let spaced = s.replace('+', " ");
    percent_decode(spaced.as_bytes()).collect()
}

fn encode(bytes: &[u8]) -> String {
    percent_encode(bytes, RFC3986).to_string()
}

/// One decoded query parameter; a repeated auth parameter is ambiguous and so rejected.
fn query_param(query: &[(Vec<u8>, Vec<u8>)], name: &str) -> Result<Option<String>, SigV4Error> {
    let mut found = query.iter().filter(|(k, _)| k == name.as_bytes());
    let first = found.next();
    if found.next().is_some() {
        return Err(SigV4Error::Malformed(format!("Query parameter '{name}' appears more than once.")));
    }
    Ok(first.map(|(_, v)| String::from_utf8_lossy(v).into_owned()))
}

fn header_values<'h>(headers: &'h [(String, String)], name: &'h str) -> impl Iterator<Item = &'h str> + 'h {
    headers.iter().filter(move |(n, _)| n.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn single_header<'h>(headers: &'h [(String, String)], name: &'h str) -> Result<Option<&'h str>, SigV4Error> {
    let mut values = header_values(headers, name);
    let first = values.next();
    if values.next().is_some() {
        return Err(SigV4Error::Malformed(format!("Header '{name}' appears more than once.")));
    }
    Ok(first)
}

/// Trims and collapses internal whitespace runs to one space, as the canonical form requires.
fn normalize_header_value(value: &str) -> String {
    value.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

fn canonical_header_names(signed_headers: &[String]) -> Vec<String> {
    let mut names: Vec<String> = signed_headers.iter().map(|h| h.trim().to_ascii_lowercase()).collect();
    names.sort();
    names.dedup();
    names
}

fn credential_scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/{TERMINATOR}")
}

/// The yyyymmdd prefix of an amz date; never panics on short or non-ASCII input.
fn scope_date_of(amz_date: &str) -> &str {
    amz_date.get(..8).unwrap_or(amz_date)
}

/// Strict yyyymmddThhmmssZ: chrono alone would also accept signs and extra digits.
fn parse_amz_date(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let shape_ok =
        b.len() == 16 && b[8] == b'T' && b[15] == b'Z' && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    if !shape_ok {
        return None;
    }
    NaiveDateTime::parse_from_str(s, AMZ_DATE_FORMAT).ok().map(|n| n.and_utc())
}

fn format_amz_date(d: DateTime<Utc>) -> String {
    d.format(AMZ_DATE_FORMAT).to_string()
}

/// RFC 7230 token characters, the only ones a header name can have.
fn is_token(name: &str) -> bool {
    name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    new_mac(key).chain_update(data).finalize().into_bytes().into()
}

/// Client text echoed in errors is bounded so a hostile header cannot bloat responses or logs.
fn clip(s: &str) -> String {
    s.chars().take(ECHO_LIMIT).collect()
}

fn malformed(msg: &str) -> SigV4Error {
    SigV4Error::Malformed(msg.to_string())
}

fn expired(msg: &str) -> SigV4Error {
    SigV4Error::Expired(msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const REGION: &str = "us-east-1";
    const SERVICE: &str = "service";
    const DATE: &str = "20150830T123600Z";
    const SCOPE: &str = "20150830/us-east-1/service/aws4_request";

    /// One case of AWS's aws-sig-v4-test-suite: the .req, .creq, .sts and .authz texts.
    struct Vector {
        name: &'static str,
        req: &'static str,
        creq: &'static str,
        sts: &'static str,
        authz: &'static str,
    }

    const VECTORS: &[Vector] = &[
        Vector {
            name: "get-vanilla",
            req: "GET / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        },
        // The published get-vanilla-query really has no query: it is identical to get-vanilla.
        Vector {
            name: "get-vanilla-query",
            req: "GET / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        },
        Vector {
            name: "get-vanilla-query-order-key",
            req: "GET /?Param1=value2&Param1=Value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\nParam1=Value1&Param1=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
        },
        Vector {
            name: "get-vanilla-query-order-key-case",
            req: "GET /?Param2=value2&Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        },
        Vector {
            name: "get-vanilla-query-order-value",
            req: "GET /?Param1=value2&Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\nParam1=value1&Param1=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nc968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
        },
        Vector {
            name: "get-vanilla-query-unreserved",
            req: "GET /?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nc30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
        },
        Vector {
            name: "get-vanilla-utf8-query",
            req: "GET /?ሴ=bar HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n%E1%88%B4=bar\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\neb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
        },
        // Despite its name, the published vector has a key with a value.
        Vector {
            name: "get-vanilla-empty-query-key",
            req: "GET /?Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\nParam1=value1\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
        },
        Vector {
            name: "get-unreserved",
            req: "GET /-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
        },
        Vector {
            name: "get-utf8",
            req: "GET /ሴ HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
        },
        Vector {
            name: "get-header-key-duplicate",
            req: "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value2\nMy-Header1:value2\nMy-Header1:value1\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\ndc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature=c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
        },
        Vector {
            name: "get-header-value-order",
            req: "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value4\nMy-Header1:value1\nMy-Header1:value3\nMy-Header1:value2\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value4,value1,value3,value2\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature=08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
        },
        Vector {
            name: "get-header-value-trim",
            req: "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1: value1\nMy-Header2: \"a   b   c\"\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\na726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;my-header2;x-amz-date, Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
        },
        // normalize-path/get-space
        Vector {
            name: "get-space",
            req: "GET /example space/ HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/example%20space/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
        },
        Vector {
            name: "get-slash",
            req: "GET // HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        },
        Vector {
            name: "get-slashes",
            req: "GET //example// HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/example/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\ncb96b4ac96d501f7c5c15bc6d67b3035061cfced4af6585ad927f7e6c985c015",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
        },
        Vector {
            name: "get-slash-dot-slash",
            req: "GET /./ HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        },
        Vector {
            name: "get-slash-pointless-dot",
            req: "GET /./example HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/example\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n214d50c111a8edc4819da6a636336472c916b5240f51e9a51b5c3305180cf702",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5",
        },
        Vector {
            name: "get-relative",
            req: "GET /example/.. HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        },
        Vector {
            name: "get-relative-relative",
            req: "GET /example1/example2/../.. HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        },
        Vector {
            name: "post-vanilla",
            req: "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        },
        Vector {
            name: "post-vanilla-query",
            req: "POST /?Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "POST\n/\nParam1=value1\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
        },
        Vector {
            name: "post-vanilla-empty-query-value",
            req: "POST /?Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "POST\n/\nParam1=value1\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
        },
        Vector {
            name: "post-header-key-case",
            req: "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        },
        Vector {
            name: "post-header-key-sort",
            req: "POST / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value1\nX-Amz-Date:20150830T123600Z",
            creq: "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature=c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
        },
        Vector {
            name: "post-header-value-case",
            req: "POST / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:VALUE1\nX-Amz-Date:20150830T123600Z",
            creq: "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:VALUE1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nd51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature=cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
        },
        // The two x-www-form-urlencoded cases are the suite's original (2015) self-consistent
        // revision. A later revision added Content-Length to .req/.creq and changed
        // "charset=utf8" to "charset=utf-8" without regenerating .sts/.authz, so its .sts no
        // longer hashes its own .creq and no implementation can match both.
        Vector {
            name: "post-x-www-form-urlencoded",
            req: "POST / HTTP/1.1\nContent-Type:application/x-www-form-urlencoded\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\n\nParam1=value1",
            creq: "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
        },
        Vector {
            name: "post-x-www-form-urlencoded-parameters",
            req: "POST / HTTP/1.1\nContent-Type:application/x-www-form-urlencoded; charset=utf8\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\n\nParam1=value1",
            creq: "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf8\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n2e1cf7ed91881a30569e46552437e4156c823447bf1781b921b5d486c568dd1c",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe",
        },
        Vector {
            name: "post-sts-header-before",
            req: "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nX-Amz-Security-Token:AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==",
            creq: "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\nx-amz-security-token:AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==\n\nhost;x-amz-date;x-amz-security-token\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nc237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
        },
    ];

    /// A request parsed from a .req text, owning what `HttpRequest` borrows.
    struct OwnedRequest {
        method: String,
        path: String,
        query: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl OwnedRequest {
        fn as_req(&self) -> HttpRequest<'_> {
            HttpRequest {
                method: &self.method,
                path: &self.path,
                query: &self.query,
                headers: &self.headers,
                body: &self.body,
            }
        }
    }

    /// Reads a .req text; the request target may contain raw spaces (get-space), so the
    /// method and protocol are peeled off the ends instead of splitting on spaces.
    fn parse_req(text: &str) -> OwnedRequest {
        let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
        let mut lines = head.lines();
        let request_line = lines.next().unwrap();
        let (method, rest) = request_line.split_once(' ').unwrap();
        let target = rest.strip_suffix(" HTTP/1.1").unwrap();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.to_string(), v.to_string())
            })
            .collect();
        OwnedRequest {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    fn vector_time() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2015, 8, 30, 12, 36, 0).unwrap()
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn signed_headers_of(creq: &str) -> Vec<String> {
        let line = creq.lines().rev().nth(1).unwrap();
        line.split(';').map(str::to_string).collect()
    }

    fn with_header(req: &OwnedRequest, name: &str, value: &str) -> OwnedRequest {
        let mut headers = req.headers.clone();
        headers.push((name.to_string(), value.to_string()));
        OwnedRequest {
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            headers,
            body: req.body.clone(),
        }
    }

    #[test]
    fn aws_test_suite_vectors() {
        for v in VECTORS {
            let owned = parse_req(v.req);
            let req = owned.as_req();
            let signed = signed_headers_of(v.creq);
            let payload = hex::encode(Sha256::digest(req.body));

            let creq = canonical_request(&req, &signed, &payload, false);
            assert_eq!(creq, v.creq, "{}: canonical request", v.name);
            assert_eq!(string_to_sign(DATE, SCOPE, &creq), v.sts, "{}: string to sign", v.name);
            assert_eq!(
                sign_header(&req, AKID, SECRET, DATE, REGION, SERVICE, &signed),
                v.authz,
                "{}: authorization",
                v.name
            );

            let signed_req = with_header(&owned, "Authorization", v.authz);
            let req = signed_req.as_req();
            let auth = parse(&req).unwrap_or_else(|e| panic!("{}: parse: {e}", v.name));
            assert_eq!(auth.form, AuthForm::Header);
            assert_eq!(auth.access_key_id, AKID);
            assert_eq!(auth.signed_headers, signed);
            assert_eq!(verify(&req, &auth, SECRET, vector_time()), Ok(()), "{}: verify", v.name);
        }
    }

    #[test]
    fn signing_key_matches_aws_documentation_example() {
        // From AWS's "Examples of how to derive a signing key" page.
        let key = signing_key(SECRET, "20120215", "us-east-1", "iam");
        assert_eq!(hex::encode(key), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
    }

    #[test]
    fn parse_reads_all_claims() {
        let owned = with_header(&parse_req(VECTORS[0].req), "Authorization", VECTORS[0].authz);
        let auth = parse(&owned.as_req()).unwrap();
        assert_eq!(
            auth,
            ParsedAuth {
                form: AuthForm::Header,
                access_key_id: AKID.into(),
                scope_date: "20150830".into(),
                region: REGION.into(),
                service: SERVICE.into(),
                signed_headers: strings(&["host", "x-amz-date"]),
                signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31".into(),
                amz_date: vector_time(),
                expires_secs: None,
            }
        );
    }

    #[test]
    fn header_without_spaces_after_commas_and_any_name_case() {
        let authz = VECTORS[0].authz.replace(", ", ",");
        let mut owned = with_header(&parse_req(VECTORS[0].req), "AUTHORIZATION", &authz);
        for (name, _) in owned.headers.iter_mut() {
            *name = name.to_ascii_lowercase();
        }
        let req = owned.as_req();
        let auth = parse(&req).unwrap();
        assert_eq!(verify(&req, &auth, SECRET, vector_time()), Ok(()));
    }

    #[test]
    fn date_header_is_used_when_x_amz_date_is_absent() {
        let base = OwnedRequest {
            method: "GET".into(),
            path: "/".into(),
            query: "".into(),
            headers: vec![
                ("Host".into(), "example.amazonaws.com".into()),
                ("Date".into(), "Sun, 30 Aug 2015 12:36:00 GMT".into()),
            ],
            body: vec![],
        };
        let signed = strings(&["date", "host"]);
        let authz = sign_header(&base.as_req(), AKID, SECRET, DATE, REGION, SERVICE, &signed);
        let owned = with_header(&base, "Authorization", &authz);
        let req = owned.as_req();
        let auth = parse(&req).unwrap();
        assert_eq!(auth.amz_date, vector_time());
        assert_eq!(verify(&req, &auth, SECRET, vector_time()), Ok(()));
    }

    fn signed_post(body: &str) -> OwnedRequest {
        let base = OwnedRequest {
            method: "POST".into(),
            path: "/".into(),
            query: "".into(),
            headers: vec![
                ("Content-Type".into(), "application/x-www-form-urlencoded; charset=utf-8".into()),
                ("Host".into(), "ec2.us-east-1.amazonaws.com".into()),
                ("X-Amz-Date".into(), DATE.into()),
            ],
            body: body.as_bytes().to_vec(),
        };
        let signed = strings(&["content-type", "host", "x-amz-date"]);
        let authz = sign_header(&base.as_req(), AKID, SECRET, DATE, REGION, "ec2", &signed);
        with_header(&base, "Authorization", &authz)
    }

    #[test]
    fn wrong_secret_is_a_mismatch() {
        let owned = signed_post("Action=DescribeInstances&Version=2016-11-15");
        let req = owned.as_req();
        let auth = parse(&req).unwrap();
        assert_eq!(verify(&req, &auth, SECRET, vector_time()), Ok(()));
        let err = verify(&req, &auth, "not-the-secret", vector_time()).unwrap_err();
        assert_eq!(err, SigV4Error::SignatureMismatch);
        assert_eq!(
            err.to_string(),
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method."
        );
        assert_eq!(err.code(), "SignatureDoesNotMatch");
    }

    #[test]
    fn tampered_body_is_a_mismatch() {
        let mut owned = signed_post("Action=DescribeInstances&Version=2016-11-15");
        owned.body = b"Action=TerminateInstances&Version=2016-11-15".to_vec();
        let req = owned.as_req();
        let auth = parse(&req).unwrap();
        assert_eq!(verify(&req, &auth, SECRET, vector_time()), Err(SigV4Error::SignatureMismatch));
    }

    #[test]
    fn claimed_payload_hash_must_match_body() {
        let original = b"Action=DescribeInstances";
        let base = OwnedRequest {
            method: "POST".into(),
            path: "/".into(),
            query: "".into(),
            headers: vec![
                ("Host".into(), "ec2.example".into()),
                ("X-Amz-Date".into(), DATE.into()),
                ("X-Amz-Content-Sha256".into(), hex::encode(Sha256::digest(original))),
            ],
            body: original.to_vec(),
        };
        let signed = strings(&["host", "x-amz-content-sha256", "x-amz-date"]);
        let authz = sign_header(&base.as_req(), AKID, SECRET, DATE, REGION, "ec2", &signed);
        let mut owned = with_header(&base, "Authorization", &authz);
        let auth = parse(&owned.as_req()).unwrap();
        assert_eq!(verify(&owned.as_req(), &auth, SECRET, vector_time()), Ok(()));

        owned.body = b"Action=TerminateInstances".to_vec();
        assert_eq!(verify(&owned.as_req(), &auth, SECRET, vector_time()), Err(SigV4Error::SignatureMismatch));
    }

    #[test]
    fn unsigned_payload_is_accepted() {
        let base = OwnedRequest {
            method: "POST".into(),
            path: "/".into(),
            query: "".into(),
            headers: vec![
                ("Host".into(), "ec2.example".into()),
                ("X-Amz-Date".into(), DATE.into()),
                ("X-Amz-Content-Sha256".into(), UNSIGNED_PAYLOAD.into()),
            ],
            body: b"anything".to_vec(),
        };
        let signed = strings(&["host", "x-amz-content-sha256", "x-amz-date"]);
        let authz = sign_header(&base.as_req(), AKID, SECRET, DATE, REGION, "ec2", &signed);
        let owned = with_header(&base, "Authorization", &authz);
        let req = owned.as_req();
        let auth = parse(&req).unwrap();
        assert!(canonical_request(&req, &signed, UNSIGNED_PAYLOAD, false).ends_with("\nUNSIGNED-PAYLOAD"));
        assert_eq!(verify(&req, &auth, SECRET, vector_time()), Ok(()));
    }

    #[test]
    fn clock_skew_window_is_fifteen_minutes() {
        let owned = with_header(&parse_req(VECTORS[0].req), "Authorization", VECTORS[0].authz);
        let req = owned.as_req();
        let auth = parse(&req).unwrap();
        let t = vector_time();
        for ok in [t + TimeDelta::minutes(14), t - TimeDelta::minutes(15)] {
            assert_eq!(verify(&req, &auth, SECRET, ok), Ok(()));
        }
        for stale in [t + TimeDelta::minutes(20), t - TimeDelta::minutes(20)] {
            let err = verify(&req, &auth, SECRET, stale).unwrap_err();
            assert!(matches!(err, SigV4Error::Expired(_)), "{err:?}");
            assert_eq!(err.code(), "RequestExpired");
        }
        let msg = verify(&req, &auth, SECRET, t + TimeDelta::minutes(20)).unwrap_err().to_string();
        assert_eq!(
            msg,
            "Signature expired: 20150830T123600Z is now earlier than 20150830T124100Z \
             (20150830T125600Z - 15 min.)"
        );
    }

    fn presigned_get(expires: u64) -> OwnedRequest {
        let base = OwnedRequest {
            method: "GET".into(),
            path: "/".into(),
            query: "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3AName&Filter.1.Value.1=a%20b".into(),
            headers: vec![("Host".into(), "ec2.us-east-1.amazonaws.com".into())],
            body: vec![],
        };
        let signed = strings(&["host"]);
        let params = SigningParams {
            access_key_id: AKID,
            secret: SECRET,
            amz_date: DATE,
            region: REGION,
            service: "ec2",
            signed_headers: &signed,
        };
        let query = presign_query(&base.as_req(), &params, expires);
        OwnedRequest { query, ..base }
    }

    #[test]
    fn presigned_round_trip() {
        let owned = presigned_get(300);
        assert!(owned.query.contains("X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fec2%2Faws4_request"));
        let req = owned.as_req();
        let auth = parse(&req).unwrap();
        assert_eq!(auth.form, AuthForm::Presigned);
        assert_eq!(auth.service, "ec2");
        assert_eq!(auth.expires_secs, Some(300));
        assert_eq!(auth.signed_headers, strings(&["host"]));

        let t = vector_time();
        assert_eq!(verify(&req, &auth, SECRET, t + TimeDelta::seconds(60)), Ok(()));
        assert_eq!(verify(&req, &auth, SECRET, t + TimeDelta::seconds(300)), Ok(()));
        assert_eq!(verify(&req, &auth, "wrong", t), Err(SigV4Error::SignatureMismatch));
        assert!(matches!(verify(&req, &auth, SECRET, t + TimeDelta::seconds(301)), Err(SigV4Error::Expired(_))));
        assert!(matches!(verify(&req, &auth, SECRET, t - TimeDelta::minutes(20)), Err(SigV4Error::Expired(_))));

        // Any change to a signed query parameter breaks the signature.
        let tampered = OwnedRequest { query: owned.query.replace("DescribeInstances", "TerminateInstances"), ..owned };
        let req = tampered.as_req();
        let auth = parse(&req).unwrap();
        assert_eq!(verify(&req, &auth, SECRET, t), Err(SigV4Error::SignatureMismatch));
    }

    #[test]
    fn presigned_expiry_longer_than_a_week_is_refused() {
        let owned = presigned_get(MAX_PRESIGNED_EXPIRES_SECS + 1);
        let req = owned.as_req();
        let auth = parse(&req).unwrap();
        assert!(matches!(verify(&req, &auth, SECRET, vector_time()), Err(SigV4Error::Expired(_))));
    }

    #[test]
    fn presigned_keeps_security_token_and_drops_signature() {
        let q = "X-Amz-Security-Token=tok%2Ben&X-Amz-Signature=abc&A=1";
        assert_eq!(canonical_query(q, true), "A=1&X-Amz-Security-Token=tok%2Ben");
        assert_eq!(canonical_query(q, false), "A=1&X-Amz-Security-Token=tok%2Ben&X-Amz-Signature=abc");
    }

    #[test]
    fn canonical_query_rules() {
        assert_eq!(canonical_query("", false), "");
        assert_eq!(canonical_query("b=2&a&c=", false), "a=&b=2&c=");
        assert_eq!(canonical_query("k=a+b&k=a%20b", false), "k=a%20b&k=a%20b");
        assert_eq!(canonical_query("k=%2B%2f%7E", false), "k=%2B%2F~");
        assert_eq!(canonical_query("k=%FF", false), "k=%FF");
        assert_eq!(canonical_query("k=a=b", false), "k=a%3Db");
    }

    #[test]
    fn canonical_uri_double_encodes_and_normalises() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/foo%20bar"), "/foo%2520bar");
        assert_eq!(canonical_uri("/a//b/./c/../d/"), "/a/b/d/");
        assert_eq!(canonical_uri("/../.."), "/");
        assert_eq!(canonical_uri("/a:b@c"), "/a%3Ab%40c");
    }

    fn vanilla_with_authz(authz: &str) -> OwnedRequest {
        with_header(&parse_req(VECTORS[0].req), "Authorization", authz)
    }

    #[test]
    fn malformed_authorization_headers() {
        let cred = "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
        let sig = "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        let cases = [
            "AWS4-HMAC-SHA256".to_string(),
            "AWS4-HMAC-SHA256 ".to_string(),
            format!("AWS4-HMAC-SHA256 {cred}"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;x-amz-date"),
            format!("AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, {sig}"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;x-amz-date, Signature=xyz"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;x-amz-date, Signature=5FA0"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=x-amz-date, {sig}"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=, {sig}"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;;x-amz-date, {sig}"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host x;x-amz-date, {sig}"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;x-amz-date, {sig}, Extra=1"),
            format!("AWS4-HMAC-SHA256 {cred}, {cred}, SignedHeaders=host;x-amz-date, {sig}"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders, {sig}"),
            format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/aws4_request, SignedHeaders=host;x-amz-date, {sig}"),
            format!("AWS4-HMAC-SHA256 Credential=/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, {sig}"),
            format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/2015083/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, {sig}"),
            format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request/x, SignedHeaders=host;x-amz-date, {sig}"),
        ];
        for authz in &cases {
            let owned = vanilla_with_authz(authz);
            let err = parse(&owned.as_req()).unwrap_err();
            assert!(matches!(err, SigV4Error::Malformed(_)), "{authz}: {err:?}");
            assert_eq!(err.code(), "IncompleteSignature");
        }
        let msg = parse(&vanilla_with_authz("AWS4-HMAC-SHA256 ").as_req()).unwrap_err().to_string();
        assert_eq!(
            msg,
            "Authorization header requires 'Credential' parameter. Authorization header requires \
             'SignedHeaders' parameter. Authorization header requires 'Signature' parameter."
        );
    }

    #[test]
    fn malformed_dates_and_duplicates() {
        let authz = VECTORS[0].authz;
        let no_date = OwnedRequest {
            method: "GET".into(),
            path: "/".into(),
            query: "".into(),
            headers: vec![("Host".into(), "example.amazonaws.com".into()), ("Authorization".into(), authz.into())],
            body: vec![],
        };
        let bad_date = with_header(&no_date, "X-Amz-Date", "2015-08-30T12:36:00Z");
        let two_dates = with_header(&with_header(&no_date, "X-Amz-Date", DATE), "X-Amz-Date", DATE);
        let two_authz = with_header(&parse_req(VECTORS[0].req), "Authorization", authz);
        let two_authz = with_header(&two_authz, "Authorization", authz);
        let mut both = vanilla_with_authz(authz);
        both.query = "X-Amz-Algorithm=AWS4-HMAC-SHA256".into();
        for owned in [no_date, bad_date, two_dates, two_authz, both] {
            let err = parse(&owned.as_req()).unwrap_err();
            assert!(matches!(err, SigV4Error::Malformed(_)), "{err:?}");
        }
    }

    #[test]
    fn signed_header_missing_from_request_is_malformed() {
        let v = VECTORS.iter().find(|v| v.name == "post-header-key-sort").unwrap();
        let mut owned = with_header(&parse_req(v.req), "Authorization", v.authz);
        owned.headers.retain(|(n, _)| n != "My-Header1");
        let req = owned.as_req();
        let auth = parse(&req).unwrap();
        assert!(matches!(verify(&req, &auth, SECRET, vector_time()), Err(SigV4Error::Malformed(_))));
    }

    #[test]
    fn unsupported_algorithms() {
        for authz in [
            "AWS AKIDEXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=",
            "AWS4-HMAC-SHA1 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request",
            "AWS4-ECDSA-P256-SHA256 Credential=AKIDEXAMPLE/20150830/service/aws4_request",
            "",
        ] {
            let err = parse(&vanilla_with_authz(authz).as_req()).unwrap_err();
            assert!(matches!(err, SigV4Error::UnsupportedAlgorithm(_)), "{authz}: {err:?}");
        }
        let mut owned = presigned_get(60);
        owned.query = owned.query.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1");
        assert_eq!(parse(&owned.as_req()), Err(SigV4Error::UnsupportedAlgorithm("AWS4-HMAC-SHA1".into())));
    }

    #[test]
    fn scope_mismatches() {
        let sig = "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        for cred in [
            "AKIDEXAMPLE/20150831/us-east-1/service/aws4_request",
            "AKIDEXAMPLE/20150830/us-east-1/service/aws5_request",
        ] {
            let authz = format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host;x-amz-date, {sig}");
            let err = parse(&vanilla_with_authz(&authz).as_req()).unwrap_err();
            assert!(matches!(err, SigV4Error::ScopeMismatch(_)), "{cred}: {err:?}");
        }
    }

    #[test]
    fn missing_auth() {
        let owned = parse_req(VECTORS[0].req);
        let err = parse(&owned.as_req()).unwrap_err();
        assert_eq!(err, SigV4Error::Missing);
        assert_eq!(err.code(), "MissingAuthenticationToken");
    }

    #[test]
    fn malformed_presigned_queries() {
        let good = presigned_get(60).query;
        let cases = [
            good.replace("X-Amz-Expires=60", "X-Amz-Expires=soon"),
            good.replace("X-Amz-Date=", "X-Amz-Datum="),
            good.replace("X-Amz-Signature=", "X-Amz-Sig="),
            format!("{good}&X-Amz-Signature=00"),
            good.replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=content-type"),
            "X-Amz-Algorithm=AWS4-HMAC-SHA256".to_string(),
        ];
        for query in cases {
            let owned = OwnedRequest { query: query.clone(), ..presigned_get(60) };
            let err = parse(&owned.as_req()).unwrap_err();
            assert!(matches!(err, SigV4Error::Malformed(_)), "{query}: {err:?}");
        }
    }

    #[test]
    fn errors_never_reveal_secret_or_expected_signature() {
        let owned = signed_post("Action=DescribeInstances");
        let req = owned.as_req();
        let auth = parse(&req).unwrap();
        let errors = [
            verify(&req, &auth, "other-secret", vector_time()).unwrap_err(),
            verify(&req, &auth, SECRET, vector_time() + TimeDelta::hours(1)).unwrap_err(),
        ];
        let mut tampered = auth.clone();
        tampered.signature = "0".repeat(64);
        let err = verify(&req, &tampered, SECRET, vector_time()).unwrap_err();
        for e in errors.iter().chain([&err]) {
            let text = format!("{e} {e:?}");
            assert!(!text.contains(SECRET));
            assert!(!text.contains(&auth.signature));
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_headers(
            authz in prop_oneof![
                any::<String>(),
                "AWS4-HMAC-SHA256 .{0,200}",
                "AWS4-HMAC-SHA256 (Credential|SignedHeaders|Signature)=[A-Za-z0-9/;=, _-]{0,120}",
            ],
            date in prop_oneof![Just(DATE.to_string()), any::<String>(), "[0-9T Z]{0,20}"],
        ) {
            let owned = OwnedRequest {
                method: "GET".into(),
                path: "/".into(),
                query: "".into(),
                headers: vec![
                    ("Host".into(), "h".into()),
                    ("X-Amz-Date".into(), date),
                    ("Authorization".into(), authz),
                ],
                body: vec![],
            };
            let req = owned.as_req();
            if let Ok(auth) = parse(&req) {
                let _ = verify(&req, &auth, SECRET, vector_time());
            }
        }

        #[test]
        fn parse_never_panics_on_arbitrary_queries(
            query in prop_oneof![
                any::<String>(),
                "X-Amz-Algorithm=AWS4-HMAC-SHA256&[A-Za-z0-9%&=+./_~-]{0,200}",
                "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=[A-Za-z0-9%/]{0,60}&X-Amz-Date=[0-9TZ]{0,17}&X-Amz-Expires=[0-9]{0,22}&X-Amz-SignedHeaders=[a-z;]{0,20}&X-Amz-Signature=[0-9a-f]{0,70}",
            ],
            path in any::<String>(),
        ) {
            let owned = OwnedRequest {
                method: "GET".into(),
                path,
                query,
                headers: vec![("Host".into(), "h".into())],
                body: vec![],
            };
            let req = owned.as_req();
            if let Ok(auth) = parse(&req) {
                let _ = verify(&req, &auth, SECRET, vector_time());
            }
        }
    }
}
