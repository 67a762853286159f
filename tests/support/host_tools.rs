//! Shared by the Rust tests that need host tools (QEMU, nft, root, mmdebstrap, …).
//!
//! Rust's test harness cannot mark a test skipped at run time, so a test that cannot run calls
//! [`cannot_run`] and returns. Where the tools are meant to be present — `scripts/test` sets
//! `KILN_REQUIRE_HOST_TOOLS=1` when it installed them — that is a failure, never a silent ok.

/// Says why a test cannot run here: a panic when `KILN_REQUIRE_HOST_TOOLS=1`, else a note on
/// stderr.
pub fn cannot_run(why: &str) {
    if std::env::var_os("KILN_REQUIRE_HOST_TOOLS").is_some_and(|v| v == "1") {
        panic!("this test must run here (KILN_REQUIRE_HOST_TOOLS=1) but cannot: {why}");
    }
    eprintln!("not run: {why} (set KILN_REQUIRE_HOST_TOOLS=1 to make this a failure)");
}
