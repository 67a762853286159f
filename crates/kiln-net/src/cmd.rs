//! Running `ip` and `nft`: no shell, and failures that name the command and quote its stderr.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::NetError;

/// Runs `program args…` and returns its stdout.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String, NetError> {
    run_with_stdin(program, args, None)
}

/// Runs `program args…` with `stdin` written to its standard input (then closed).
pub(crate) fn run_with_stdin(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, NetError> {
    let command = command_line(program, args);
    let spawn_error = |source| NetError::Spawn { command: command.clone(), source };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error means the child exited early; its status and stderr say why.
        let _ = pipe.write_all(text.as_bytes());
    }
    let output = child.wait_with_output().map_err(spawn_error)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(NetError::Command {
            command,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

fn command_line(program: &str, args: &[&str]) -> String {
    std::iter::once(program).chain(args.iter().copied()).collect::<Vec<_>>().join(" ")
}

/// Writes `value` to a `/proc/sys` or `/sys` file.
pub(crate) fn write_sysctl(path: &str, value: &str) -> Result<(), NetError> {
    std::fs::write(path, value).map_err(|source| NetError::Io { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_command_reports_its_command_line_and_stderr() {
        let err = run("sh", &["-c", "echo oops >&2; exit 3"]).unwrap_err();
        match err {
            NetError::Command { command, status, stderr } => {
                assert_eq!(command, "sh -c echo oops >&2; exit 3");
                assert_eq!(status.code(), Some(3));
                assert_eq!(stderr, "oops");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn stdin_reaches_the_command() {
        assert_eq!(run_with_stdin("cat", &[], Some("table inet kiln {}\n")).unwrap(), "table inet kiln {}\n");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        assert!(matches!(run("kiln-no-such-program", &[]), Err(NetError::Spawn { .. })));
    }
}
