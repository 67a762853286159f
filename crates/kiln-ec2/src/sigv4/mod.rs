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
mod tests;
