//! Runs a [`ToolCommand`] with no shell, a closed stdin, captured output and a deadline.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

use crate::argv::ToolCommand;
use crate::error::{DiskError, Result};

/// How much of a tool's stderr an error keeps.
const STDERR_LIMIT: usize = 4096;

/// Runs `cmd` to completion and returns its stdout; kills it after `timeout`.
pub(crate) fn run(cmd: &ToolCommand, timeout: Duration) -> Result<Vec<u8>> {
    let started = Instant::now();
    let mut child = Command::new(cmd.program)
        .args(&cmd.args)
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
