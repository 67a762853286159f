//! Arbitrary headers, paths and query strings through the SigV4 parser and verifier.
#![no_main]

use kiln_ec2::sigv4::{self, HttpRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let auth = parts.next().unwrap_or("").to_string();
    let date = parts.next().unwrap_or("").to_string();
    let query = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("/").to_string();
    let headers = vec![
        ("authorization".to_string(), auth),
        ("x-amz-date".to_string(), date),
        ("host".to_string(), "127.0.0.1:8773".to_string()),
    ];
    let req = HttpRequest { method: "POST", path: &path, query: &query, headers: &headers, body: data };
    if let Ok(claims) = sigv4::parse(&req) {
        let _ = sigv4::verify(&req, &claims, "secret", chrono::Utc::now());
    }
    let no_header = HttpRequest { method: "GET", path: &path, query: &query, headers: &headers[2..], body: b"" };
    if let Ok(claims) = sigv4::parse(&no_header) {
        let _ = sigv4::verify(&no_header, &claims, "secret", chrono::Utc::now());
    }
});
