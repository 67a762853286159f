//! The instance metadata service at `http://169.254.169.254/latest/`, as guests see it on EC2.
//!
//! A request is answered for the instance whose private address it comes from (addresses are
//! unique on the host, and the packet filter drops spoofed sources at each TAP). IMDSv2: `PUT
//! /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` returns a token bound to that
//! instance; a request carrying `X-aws-ec2-metadata-token` must present a live one. IMDSv1
//! (no token) is accepted unless the instance requires tokens (its image has `ImdsSupport v2.0`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use kiln_core::instances::InstanceData;
use kiln_core::item::Item;
use kiln_core::Kiln;

const TOKEN_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const MAX_TOKEN_TTL: u64 = 21600;

/// Shared state of the metadata service.
pub struct Imds {
    kiln: Arc<Kiln>,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

/// The router serving the metadata service.
pub fn router(kiln: Arc<Kiln>) -> axum::Router {
    let state = Arc::new(Imds { kiln, tokens: Mutex::new(HashMap::new()) });
    axum::Router::new().fallback(handle).with_state(state)
}

fn plain(status: StatusCode, body: impl Into<Body>) -> Response {
    (status, [("content-type", "text/plain")], body.into()).into_response()
}

async fn handle(
    State(imds): State<Arc<Imds>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let IpAddr::V4(ip) = peer.ip() else { return plain(StatusCode::FORBIDDEN, "Forbidden") };
    let kiln = Arc::clone(&imds.kiln);
    let inst = match tokio::task::spawn_blocking(move || kiln.instance_by_private_ip(ip)).await {
        Ok(Ok(Some(inst))) => inst,
        _ => return plain(StatusCode::FORBIDDEN, "Forbidden"),
    };
    let path = uri.path().to_string();
    if method == Method::PUT && path == "/latest/api/token" {
        let ttl = headers.get(TOKEN_TTL_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        let Some(ttl) = ttl.filter(|t| (1..=MAX_TOKEN_TTL).contains(t)) else {
            return plain(StatusCode::BAD_REQUEST, "Bad Request");
        };
        let token =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, rand::random::<[u8; 32]>());
        let mut tokens = imds.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        tokens.retain(|_, (_, expiry)| *expiry > now);
        tokens.insert(token.clone(), (inst.id.clone(), now + Duration::from_secs(ttl)));
        return (StatusCode::OK, [("content-type", "text/plain"), (TOKEN_TTL_HEADER, &ttl.to_string())], token)
            .into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }
    match headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        Some(token) => {
            let tokens = imds.tokens.lock().unwrap_or_else(|e| e.into_inner());
            match tokens.get(token) {
                Some((id, expiry)) if id == &inst.id && *expiry > Instant::now() => {}
                _ => return plain(StatusCode::UNAUTHORIZED, "Unauthorized"),
            }
        }
        None if inst.data.http_tokens == "required" => return plain(StatusCode::UNAUTHORIZED, "Unauthorized"),
        None => {}
    }
    match answer(&inst, &path) {
        Some(body) => plain(StatusCode::OK, body),
        None => plain(StatusCode::NOT_FOUND, "Not Found"),
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
    use kiln_core::instances::GroupRef;
    use kiln_core::Ctx;

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
}
