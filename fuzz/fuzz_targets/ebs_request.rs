//! EBS direct requests as a client shapes them (StartSnapshot's JSON body, PutSnapshotBlock's
//! and CompleteSnapshot's headers, paging and block tokens): decoded or refused, never a panic.
#![no_main]

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use kiln_server::ebs::{changed_blocks_count, page_args, put_block_args, start_snapshot_spec};
use libfuzzer_sys::fuzz_target;

fn headers(text: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    for line in text.lines() {
        if let Some((name, value)) = line.split_once(':') {
            if let (Ok(n), Ok(v)) =
                (HeaderName::from_bytes(name.trim().as_bytes()), HeaderValue::from_str(value.trim()))
            {
                h.append(n, v);
            }
        }
    }
    h
}

fuzz_target!(|data: &[u8]| {
    let _ = start_snapshot_spec(data);
    let text = String::from_utf8_lossy(data);
    // "index\nheaders\n\nbody" for PutSnapshotBlock.
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let (index, header_text) = head.split_once('\n').unwrap_or((head, ""));
    let h = headers(header_text);
    if let Ok((i, checksum)) = put_block_args(index, &h, body.as_bytes()) {
        assert_eq!(index.parse::<u64>().ok(), Some(i));
        assert_eq!(h.get("x-amz-checksum").and_then(|v| v.to_str().ok()), Some(checksum.as_str()));
    }
    let _ = changed_blocks_count(&h);
    let q: HashMap<String, String> =
        text.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if let Ok((start, max, token)) = page_args(&q) {
        assert!((100..=10000).contains(&max));
        let _ = kiln_core::storage::ebs::resume_point(start, token.as_deref());
    }
    let _ = kiln_core::storage::ebs::parse_block_token(&text);
});
