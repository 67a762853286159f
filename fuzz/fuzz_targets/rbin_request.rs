//! Recycle Bin request bodies (CreateRule, ListRules): decoded or refused, never a panic.
#![no_main]

use kiln_server::rbin::{create_rule_request, list_rules_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rule) = create_rule_request(data) {
        assert!(!rule.resource_type.is_empty() || data.windows(12).any(|w| w == b"ResourceType"));
    }
    let _ = list_rules_request(data);
});
