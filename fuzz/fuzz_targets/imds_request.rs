//! What a guest sends the metadata service (method, headers, path) must get an answer, never a
//! panic, and the tokens it is given stay bounded.
#![no_main]

use std::time::Instant;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use kiln_core::records::instance::InstanceData;
use kiln_core::records::item::Item;
use kiln_core::Ctx;
use kiln_server::imds::{reply, Tokens, MAX_TOKENS_PER_INSTANCE};
use libfuzzer_sys::fuzz_target;

fn instance(tokens_required: bool) -> Item<InstanceData> {
    let ctx = Ctx { account: "111111111111".into(), region: "us-east-1".into() };
    let data = InstanceData {
        image_id: "ami-0123456789abcdef0".into(),
        instance_type: "t3.micro".into(),
        private_ip: "172.31.0.4".into(),
        public_ip: Some("100.64.0.10".into()),
        availability_zone: "us-east-1a".into(),
        key_name: Some("k".into()),
        public_key: Some("ssh-ed25519 AAAA k".into()),
        user_data: Some("ZWNobyBoaQ==".into()),
        http_tokens: if tokens_required { "required" } else { "optional" }.into(),
        ..Default::default()
    };
    Item::new(&ctx, None, String::new(), vec![], data)
}

// Input: lines. The first is "METHOD PATH"; each next "name: value" is a header; a blank line
// starts the next request on the same token table.
fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let inst = instance(data.first().is_some_and(|b| b & 1 == 1));
    let mut tokens = Tokens::default();
    let now = Instant::now();
    for request in text.split("\n\n") {
        let mut lines = request.lines();
        let first = lines.next().unwrap_or("");
        let (method, path) = first.split_once(' ').unwrap_or((first, "/"));
        let Ok(method) = Method::from_bytes(method.as_bytes()) else { continue };
        let mut headers = HeaderMap::new();
        for line in lines {
            let Some((name, value)) = line.split_once(':') else { continue };
            if let (Ok(n), Ok(v)) =
                (HeaderName::from_bytes(name.trim().as_bytes()), HeaderValue::from_str(value.trim()))
            {
                headers.append(n, v);
            }
        }
        let answer = reply(&mut tokens, &inst, &method, &headers, path, now);
        if answer.ttl.is_some() {
            assert_eq!(answer.status, 200);
        }
        assert!(tokens.len() <= MAX_TOKENS_PER_INSTANCE);
    }
});
