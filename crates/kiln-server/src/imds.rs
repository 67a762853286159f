//! The instance metadata service at `http://169.254.169.254/latest/`, as guests see it on EC2.
//!
//! A request is answered for the instance whose private address it comes from (addresses are
//! unique on the host, and the packet filter drops spoofed sources at each TAP). IMDSv2: `PUT
//! /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` returns a token bound to that
//! instance; a request carrying `X-aws-ec2-metadata-token` must present a live one. IMDSv1
//! (no token) is accepted unless the instance requires tokens (its image has `ImdsSupport v2.0`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use kiln_core::records::instance::InstanceData;
use kiln_core::records::item::Item;
use kiln_core::Kiln;

const TOKEN_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const MAX_TOKEN_TTL: u64 = 21600;
/// Live tokens one instance may hold; a new one beyond this replaces the one expiring first, so
/// a guest asking in a loop cannot grow the server's memory.
pub const MAX_TOKENS_PER_INSTANCE: usize = 64;
/// Blocking lookups one guest address may run at once.
const JOBS_PER_GUEST: usize = 4;

/// Live IMDSv2 tokens: token → (instance id, expiry).
#[derive(Default)]
pub struct Tokens(HashMap<String, (String, Instant)>);

impl Tokens {
    /// Records `token` for `instance` until `expiry`, dropping expired tokens and, past
    /// [`MAX_TOKENS_PER_INSTANCE`], the instance's token that expires first.
    pub fn insert(&mut self, token: String, instance: &str, now: Instant, expiry: Instant) {
        self.0.retain(|_, (_, e)| *e > now);
        let mine: Vec<(&String, Instant)> =
            self.0.iter().filter(|(_, (id, _))| id == instance).map(|(t, (_, e))| (t, *e)).collect();
        if mine.len() >= MAX_TOKENS_PER_INSTANCE {
            if let Some(oldest) = mine.iter().min_by_key(|(_, e)| *e).map(|(t, _)| (*t).clone()) {
                self.0.remove(&oldest);
            }
        }
        self.0.insert(token, (instance.to_owned(), expiry));
    }

    /// Whether `token` is live and belongs to `instance`.
    pub fn valid(&self, token: &str, instance: &str, now: Instant) -> bool {
        matches!(self.0.get(token), Some((id, expiry)) if id == instance && *expiry > now)
    }

    /// How many tokens are held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Shared state of the metadata service.
pub struct Imds {
    kiln: Arc<Kiln>,
    tokens: Mutex<Tokens>,
    /// Lookups on blocking threads, a few at a time per guest address.
    jobs: crate::conn::JobSlots,
}

/// The router serving the metadata service.
pub fn router(kiln: Arc<Kiln>) -> axum::Router {
    let state = Arc::new(Imds {
        kiln,
        tokens: Mutex::new(Tokens::default()),
        jobs: crate::conn::JobSlots::new(JOBS_PER_GUEST),
    });
    axum::Router::new().fallback(handle).with_state(state)
}

fn plain(status: StatusCode, body: impl Into<Body>) -> Response {
    (status, [("content-type", "text/plain")], body.into()).into_response()
}

async fn handle(
    State(imds): State<Arc<Imds>>,
    ConnectInfo(crate::conn::Peer(peer)): ConnectInfo<crate::conn::Peer>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let IpAddr::V4(ip) = peer.ip() else { return plain(StatusCode::FORBIDDEN, "Forbidden") };
    let kiln = Arc::clone(&imds.kiln);
    // A guest asking in a loop queues behind its own few slots, not everyone's threads.
    let permit = imds.jobs.acquire(&ip.to_string()).await;
    let inst = match tokio::task::spawn_blocking(move || {
        let _permit = permit;
        kiln.instance_by_private_ip(ip)
    })
    .await
    {
        Ok(Ok(Some(inst))) => inst,
        _ => return plain(StatusCode::FORBIDDEN, "Forbidden"),
    };
    let mut tokens = imds.tokens.lock().unwrap_or_else(|e| e.into_inner());
    let reply = reply(&mut tokens, &inst, &method, &headers, uri.path(), Instant::now());
    drop(tokens);
    let mut resp = (reply.status, reply.body).into_response();
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("text/plain"));
    if let Some(ttl) = reply.ttl {
        h.insert(TOKEN_TTL_HEADER, HeaderValue::from(ttl));
    }
    resp
}

/// What the metadata service answers one request with.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
    /// The granted token's lifetime, echoed in `X-aws-ec2-metadata-token-ttl-seconds`.
    pub ttl: Option<u64>,
}

impl Reply {
    fn plain(status: StatusCode, body: &str) -> Reply {
        Reply { status, body: body.as_bytes().to_vec(), ttl: None }
    }
}

/// Answers a request from `inst`'s guest: everything the guest controls (method, headers, path)
/// is read here, so this is the function the fuzz target drives.
pub fn reply(
    tokens: &mut Tokens,
    inst: &Item<InstanceData>,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
    now: Instant,
) -> Reply {
    if method == Method::PUT && path == "/latest/api/token" {
        let ttl = headers.get(TOKEN_TTL_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        let Some(ttl) = ttl.filter(|t| (1..=MAX_TOKEN_TTL).contains(t)) else {
            return Reply::plain(StatusCode::BAD_REQUEST, "Bad Request");
        };
        let token =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, rand::random::<[u8; 32]>());
        tokens.insert(token.clone(), &inst.id, now, now + Duration::from_secs(ttl));
        return Reply { status: StatusCode::OK, body: token.into_bytes(), ttl: Some(ttl) };
    }
    if method != Method::GET && method != Method::HEAD {
        return Reply::plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }
    match headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        Some(token) if !tokens.valid(token, &inst.id, now) => {
            return Reply::plain(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
        Some(_) => {}
        None if inst.data.http_tokens == "required" => return Reply::plain(StatusCode::UNAUTHORIZED, "Unauthorized"),
        None => {}
    }
    match answer(inst, path) {
        Some(body) => Reply { status: StatusCode::OK, body, ttl: None },
        None => Reply::plain(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// The body for `path` of `inst`, or `None` (404). Directory listings end entries that have
/// children with `/`, as EC2's do.
pub fn answer(inst: &Item<InstanceData>, path: &str) -> Option<Vec<u8>> {
    let d = &inst.data;
    let text = |s: &str| Some(s.as_bytes().to_vec());
    let hostname = d.private_dns_name(&inst.region);
    let rest = path.strip_prefix("/latest")?;
    let meta = match rest {
        "" | "/" => return text("dynamic\nmeta-data\nuser-data"),
        "/user-data" | "/user-data/" => return d.user_data_bytes(),
        "/dynamic" | "/dynamic/" => return text("instance-identity/"),
        "/dynamic/instance-identity" | "/dynamic/instance-identity/" => return text("document"),
        "/dynamic/instance-identity/document" => {
            let doc = serde_json::json!({
                "accountId": inst.account,
                "architecture": d.architecture,
                "availabilityZone": d.availability_zone,
                "imageId": d.image_id,
                "instanceId": inst.id,
                "instanceType": d.instance_type,
                "pendingTime": d.launch_time,
                "privateIp": d.private_ip,
                "region": inst.region,
                "version": "2017-09-30",
            });
            return serde_json::to_vec_pretty(&doc).ok();
        }
        other => other.strip_prefix("/meta-data")?,
    };
    let meta = meta.trim_start_matches('/');
    let zone = &d.availability_zone;
    let groups: Vec<&str> = d.groups.iter().map(|g| g.name.as_str()).collect();
    let key_line = d.key_name.as_ref().map(|k| format!("0={k}"));
    match meta.trim_end_matches('/') {
        "" => {
            let mut entries = vec![
                "ami-id",
                "ami-launch-index",
                "hostname",
                "instance-id",
                "instance-type",
                "local-hostname",
                "local-ipv4",
                "mac",
                "placement/",
                "reservation-id",
                "security-groups",
            ];
            if d.public_ip.is_some() {
                entries.push("public-ipv4");
            }
            if d.key_name.is_some() {
                entries.push("public-keys/");
            }
            entries.sort();
            text(&entries.join("\n"))
        }
        "ami-id" => text(&d.image_id),
        "ami-launch-index" => text(&d.launch_index.to_string()),
        "hostname" | "local-hostname" => text(&hostname),
        "instance-id" => text(&inst.id),
        "instance-type" => text(&d.instance_type),
        "local-ipv4" => text(&d.private_ip),
        "public-ipv4" => d.public_ip.as_deref().and_then(text),
        "mac" => text(&d.mac),
        "reservation-id" => text(&d.reservation_id),
        "security-groups" => text(&groups.join("\n")),
        "placement" => text("availability-zone\nregion"),
        "placement/availability-zone" => text(zone),
        "placement/region" => text(&inst.region),
        "public-keys" => key_line.as_deref().and_then(text),
        "public-keys/0" => d.public_key.as_ref().and_then(|_| text("openssh-key")),
        "public-keys/0/openssh-key" => d.public_key.as_deref().map(|k| format!("{}\n", k.trim_end()).into_bytes()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_core::records::instance::GroupRef;
    use kiln_core::Ctx;

    #[test]
    fn tokens_are_bounded_per_instance_and_expire() {
        let mut tokens = Tokens::default();
        let now = Instant::now();
        let at = |s: u64| now + Duration::from_secs(s);
        for i in 0..(MAX_TOKENS_PER_INSTANCE as u64 * 3) {
            tokens.insert(format!("a{i}"), "i-a", now, at(100 + i));
        }
        assert_eq!(tokens.len(), MAX_TOKENS_PER_INSTANCE);
        assert!(!tokens.valid("a0", "i-a", now), "the first to expire went");
        let last = format!("a{}", MAX_TOKENS_PER_INSTANCE * 3 - 1);
        assert!(tokens.valid(&last, "i-a", now));
        assert!(!tokens.valid(&last, "i-b", now), "a token is bound to its instance");
        // Another guest's tokens are not evicted by the first one's.
        tokens.insert("b0".into(), "i-b", now, at(10));
        for i in 0..MAX_TOKENS_PER_INSTANCE as u64 {
            tokens.insert(format!("c{i}"), "i-a", now, at(1000 + i));
        }
        assert!(tokens.valid("b0", "i-b", now));
        // Expired tokens are refused and dropped on the next insert.
        assert!(!tokens.valid("b0", "i-b", at(11)));
        tokens.insert("b1".into(), "i-b", at(11), at(20));
        assert_eq!(tokens.len(), MAX_TOKENS_PER_INSTANCE + 1);
    }

    fn inst() -> Item<InstanceData> {
        let ctx = Ctx { account: "111111111111".into(), region: "us-east-1".into() };
        Item::new(
            &ctx,
            None,
            String::new(),
            vec![],
            InstanceData {
                image_id: "ami-0123456789abcdef0".into(),
                instance_type: "t3.micro".into(),
                private_ip: "172.31.0.4".into(),
                public_ip: Some("100.64.0.10".into()),
                availability_zone: "us-east-1a".into(),
                key_name: Some("k".into()),
                public_key: Some("ssh-ed25519 AAAA k".into()),
                groups: vec![GroupRef { id: "sg-1".into(), name: "web".into() }],
                user_data: Some("ZWNobyBoaQ==".into()),
                ..Default::default()
            },
        )
    }

    fn get(path: &str) -> Option<String> {
        answer(&inst(), path).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn metadata_paths_answer_like_ec2() {
        let i = inst();
        // `get` answers for a fresh instance with a fresh id: ask `i` itself for its id.
        assert_eq!(answer(&i, "/latest/meta-data/instance-id").unwrap(), i.id.as_bytes());
        assert_eq!(get("/latest/meta-data/ami-id").unwrap(), "ami-0123456789abcdef0");
        assert_eq!(get("/latest/meta-data/local-ipv4").unwrap(), "172.31.0.4");
        assert_eq!(get("/latest/meta-data/public-ipv4").unwrap(), "100.64.0.10");
        assert_eq!(get("/latest/meta-data/hostname").unwrap(), "ip-172-31-0-4.ec2.internal");
        assert_eq!(get("/latest/meta-data/placement/availability-zone").unwrap(), "us-east-1a");
        assert_eq!(get("/latest/meta-data/public-keys/").unwrap(), "0=k");
        assert_eq!(get("/latest/meta-data/public-keys/0/openssh-key").unwrap(), "ssh-ed25519 AAAA k\n");
        assert_eq!(get("/latest/meta-data/security-groups").unwrap(), "web");
        assert_eq!(get("/latest/user-data").unwrap(), "echo hi");
        assert!(get("/latest/meta-data/").unwrap().contains("public-keys/"));
        assert!(get("/latest/dynamic/instance-identity/document").unwrap().contains("\"instanceId\""));
        assert_eq!(get("/latest/meta-data/nope"), None);
        assert_eq!(get("/other"), None);
    }

    #[test]
    fn tokens_are_granted_checked_and_required_when_the_instance_says_so() {
        let mut i = inst();
        let mut tokens = Tokens::default();
        let now = Instant::now();
        let mut h = HeaderMap::new();
        let ask = |tokens: &mut Tokens, i: &Item<InstanceData>, m: Method, h: &HeaderMap, p: &str| {
            reply(tokens, i, &m, h, p, now)
        };
        let id_path = "/latest/meta-data/instance-id";
        assert_eq!(ask(&mut tokens, &i, Method::GET, &h, id_path).body, i.id.as_bytes(), "IMDSv1 allowed");
        assert_eq!(ask(&mut tokens, &i, Method::PUT, &h, "/latest/api/token").status, StatusCode::BAD_REQUEST);
        h.insert(TOKEN_TTL_HEADER, HeaderValue::from_static("21601"));
        assert_eq!(ask(&mut tokens, &i, Method::PUT, &h, "/latest/api/token").status, StatusCode::BAD_REQUEST);
        h.insert(TOKEN_TTL_HEADER, HeaderValue::from_static("60"));
        let granted = ask(&mut tokens, &i, Method::PUT, &h, "/latest/api/token");
        assert_eq!((granted.status, granted.ttl), (StatusCode::OK, Some(60)));
        let mut with = HeaderMap::new();
        with.insert(TOKEN_HEADER, HeaderValue::from_bytes(&granted.body).unwrap());
        assert_eq!(ask(&mut tokens, &i, Method::GET, &with, id_path).status, StatusCode::OK);
        assert_eq!(
            reply(&mut tokens, &i, &Method::GET, &with, id_path, now + Duration::from_secs(61)).status,
            StatusCode::UNAUTHORIZED,
            "expired"
        );
        let mut wrong = HeaderMap::new();
        wrong.insert(TOKEN_HEADER, HeaderValue::from_static("made-up"));
        assert_eq!(ask(&mut tokens, &i, Method::GET, &wrong, id_path).status, StatusCode::UNAUTHORIZED);
        assert_eq!(ask(&mut tokens, &i, Method::POST, &with, id_path).status, StatusCode::METHOD_NOT_ALLOWED);
        i.data.http_tokens = "required".into();
        assert_eq!(ask(&mut tokens, &i, Method::GET, &HeaderMap::new(), id_path).status, StatusCode::UNAUTHORIZED);
        assert_eq!(ask(&mut tokens, &i, Method::GET, &with, id_path).status, StatusCode::OK);
        assert_eq!(ask(&mut tokens, &i, Method::GET, &with, "/latest/meta-data/nope").status, StatusCode::NOT_FOUND);
    }
}
