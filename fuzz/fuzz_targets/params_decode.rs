//! Arbitrary bytes as a query string or form body: decoding and typed parsing must return
//! a value or an error, never panic.
#![no_main]

use kiln_ec2::{Ec2Request, Params};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut params = Params::default();
    if params.merge_urlencoded(data).is_ok() {
        let _ = Ec2Request::parse(&params);
        let _ = params.filters();
        let _ = params.structs("IpPermissions");
    }
    // The same bytes behind each implemented action name exercise every typed decoder.
    for action in kiln_ec2::action::IMPLEMENTED {
        let mut p = Params::default();
        let _ = p.merge_urlencoded(format!("Action={action}&").as_bytes());
        if p.merge_urlencoded(data).is_ok() {
            let _ = Ec2Request::parse(&p);
        }
    }
});
