//! Runs a [`ToolCommand`] with no shell, a closed stdin, captured output and a deadline.

use std::io::Read;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

use crate::argv::{bounded, Limits, ToolCommand};
use crate::error::{DiskError, Result};

/// How much of a tool's stderr an error keeps.
const STDERR_LIMIT: usize = 4096;

/// Runs `cmd` to completion under its program's [`Limits`] and returns its stdout; kills it
/// after `timeout`.
pub(crate) fn run(cmd: &ToolCommand, timeout: Duration) -> Result<Vec<u8>> {
    run_limited(cmd, timeout, Limits::of(cmd.program))
}

fn run_limited(cmd: &ToolCommand, timeout: Duration, limits: Option<Limits>) -> Result<Vec<u8>> {
    let started = Instant::now();
    let mut child = bounded(cmd, limits)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| DiskError::Spawn { program: cmd.program.to_string(), source })?;

    // Both pipes are drained concurrently so a chatty tool cannot block on a full pipe.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());

    let status = match child.wait_timeout(timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            tracing::warn!(program = cmd.program, args = ?cmd.args_lossy(), ?timeout, "tool timed out, killed");
            return Err(DiskError::TimedOut { program: cmd.program.to_string(), after: timeout });
        }
        Err(source) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(DiskError::Spawn { program: cmd.program.to_string(), source });
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    tracing::debug!(program = cmd.program, args = ?cmd.args_lossy(), elapsed = ?started.elapsed(), %status, "tool ran");
    if !status.success() {
        return Err(DiskError::ToolFailed {
            program: cmd.program.to_string(),
            args: cmd.args_lossy(),
            status,
            stderr: trim_stderr(&stderr),
        });
    }
    Ok(stdout)
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

/// Lossy UTF-8, trimmed, and cut to a bounded length for error messages.
pub(crate) fn trim_stderr(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.len() <= STDERR_LIMIT {
        return text.to_string();
    }
    let mut end = STDERR_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> ToolCommand {
        ToolCommand { program: "sh", args: vec!["-c".into(), script.into()] }
    }

    #[test]
    fn hung_command_is_killed_at_its_deadline() {
        let started = Instant::now();
        let err = run(&sh("sleep 30"), Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, DiskError::TimedOut { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn failure_carries_stderr() {
        let err = run(&sh("echo 'no such image' >&2; exit 3"), Duration::from_secs(5)).unwrap_err();
        match err {
            DiskError::ToolFailed { status, stderr, .. } => {
                assert_eq!(status.code(), Some(3));
                assert_eq!(stderr, "no such image");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_tool_over_its_cpu_limit_is_killed() {
        let limits = Some(Limits { cpu_secs: 1, address_space_bytes: 1 << 30 });
        let started = Instant::now();
        let err = run_limited(&sh("while :; do :; done"), Duration::from_secs(30), limits).unwrap_err();
        assert!(matches!(err, DiskError::ToolFailed { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "killed by the CPU limit, not the deadline");
    }

    #[test]
    fn a_tool_over_its_memory_limit_cannot_allocate() {
        let limits = Some(Limits { cpu_secs: 10, address_space_bytes: 256 << 20 });
        // python3 is on every machine the tests run on; 512 MiB cannot be had under 256 MiB.
        let cmd = ToolCommand { program: "python3", args: vec!["-c".into(), "bytearray(512 << 20)".into()] };
        let err = run_limited(&cmd, Duration::from_secs(30), limits).unwrap_err();
        match err {
            DiskError::ToolFailed { stderr, .. } => assert!(stderr.contains("MemoryError"), "{stderr}"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(run_limited(
            &ToolCommand { program: "python3", args: vec!["-c".into(), "bytearray(1 << 20)".into()] },
            Duration::from_secs(30),
            limits
        )
        .is_ok());
    }

    #[test]
    fn qemu_tools_run_bounded() {
        assert_eq!(Limits::of("qemu-img"), Some(crate::argv::QEMU_IMG_LIMITS));
        assert_eq!(Limits::of("qemu-nbd"), Some(crate::argv::QEMU_NBD_LIMITS));
        assert_eq!(Limits::of("sh"), None);
        let cmd = ToolCommand { program: "qemu-img", args: vec!["info".into(), "./x".into()] };
        let spawned = bounded(&cmd, Limits::of("qemu-img"));
        assert_eq!(spawned.get_program(), "prlimit");
        let args: Vec<_> = spawned.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args, ["--cpu=1800", "--as=4294967296", "--", "qemu-img", "info", "./x"]);
    }

    #[test]
    fn success_returns_stdout() {
        assert_eq!(run(&sh("printf hello"), Duration::from_secs(5)).unwrap(), b"hello");
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let cmd = ToolCommand { program: "kiln-no-such-tool", args: vec![] };
        assert!(matches!(run(&cmd, Duration::from_secs(1)), Err(DiskError::Spawn { .. })));
    }

    #[test]
    fn long_stderr_is_cut() {
        let text = "é".repeat(STDERR_LIMIT);
        let cut = trim_stderr(text.as_bytes());
        assert!(cut.len() <= STDERR_LIMIT + 3 && cut.ends_with("..."));
    }
}
