//! SIGKILL in the middle of inserts: afterwards every chunk file verifies and no temp file
//! survives reopening.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{files_under, local_store, random_block, text_block, wait_until};

/// Set in the child process: the store root to fill until killed.
const CHILD_ROOT_ENV: &str = "KILN_CHUNKS_CRASH_CHILD_ROOT";
/// Set in the child process: the seed offset, so each round writes new chunks.
const CHILD_SEED_ENV: &str = "KILN_CHUNKS_CRASH_CHILD_SEED";

/// Not a test on its own: the body of the child process, which the test below runs by
/// re-executing this test binary with `--ignored`. Run any other way it fails, so it can never
/// report ok without doing anything.
#[test]
#[ignore = "the child process of sigkill_during_inserts_leaves_only_whole_chunks_and_no_temp_files, which runs it"]
fn crash_child_inserts_until_killed() {
    let root = std::env::var(CHILD_ROOT_ENV)
        .unwrap_or_else(|_| panic!("run only as the crash test's child, with {CHILD_ROOT_ENV} set"));
    let seed: u64 = std::env::var(CHILD_SEED_ENV).unwrap().parse().unwrap();
    let (_, store) = local_store(Path::new(&root));
    // Bounded so an orphaned child cannot run forever.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut i = seed;
    while Instant::now() < deadline {
        let block = if i & 1 == 0 { random_block(i) } else { text_block(i) };
        let _guard = store.insert_guard();
        store.insert(&block).unwrap();
        i += 1;
    }
}

fn chunk_file_count(root: &Path) -> usize {
    files_under(&root.join("chunks")).iter().filter(|p| !is_temp(p)).count()
}

fn is_temp(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(".tmp-"))
}

#[test]
fn sigkill_during_inserts_leaves_only_whole_chunks_and_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let exe = std::env::current_exe().unwrap();
    for round in 0..3u64 {
        let before = chunk_file_count(root);
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child_inserts_until_killed", "--ignored", "--test-threads=1"])
            .env(CHILD_ROOT_ENV, root)
            .env(CHILD_SEED_ENV, (round * 1_000_000).to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let progressed = wait_until(Duration::from_secs(60), || chunk_file_count(root) >= before + 10 + round as usize);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert!(progressed, "child wrote no chunks in round {round}");
    }

    // A leftover like the one a kill between create and rename leaves, in case the kills all
    // landed between inserts.
    let leaf = files_under(&root.join("chunks"))[0].parent().unwrap().to_path_buf();
    std::fs::write(leaf.join(".tmp-interrupted-1-0"), b"partial").unwrap();

    let (_, store) = local_store(root);
    let left: Vec<_> = files_under(&root.join("chunks")).into_iter().filter(|p| is_temp(p)).collect();
    assert!(left.is_empty(), "temp files survived reopening: {left:?}");
    let report = store.scrub().unwrap();
    assert!(report.corrupt.is_empty(), "corrupt chunks after crash: {:?}", report.corrupt);
    assert_eq!(report.verified as usize, chunk_file_count(root));
    assert!(report.verified >= 30);
    assert!(files_under(&root.join("quarantine")).is_empty());
}
