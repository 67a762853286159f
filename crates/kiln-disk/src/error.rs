//! Typed errors of this crate: [`DiskError`] for tool runs and files, [`NbdError`] for the wire.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Everything that can go wrong when Kiln touches a disk image.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// A QEMU tool could not be started (usually: not installed, or not on `PATH`).
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program that failed to start.
        program: String,
        /// Why the operating system refused.
        #[source]
        source: io::Error,
    },
    /// A QEMU tool ran and exited unsuccessfully.
    #[error("{program} failed ({status}): {stderr}")]
    ToolFailed {
        /// The program that failed.
        program: String,
        /// The arguments it was given, for the log.
        args: Vec<String>,
        /// How it exited.
        status: ExitStatus,
        /// What it wrote to stderr, trimmed.
        stderr: String,
    },
    /// A QEMU tool did not finish in time and was killed.
    #[error("{program} did not finish within {after:?} and was killed")]
    TimedOut {
        /// The program that hung.
        program: String,
        /// How long it was given.
        after: Duration,
    },
    /// A tool's JSON output did not have the expected shape.
    #[error("cannot parse the output of {program}: {source}")]
    Parse {
        /// The program whose output was unreadable.
        program: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// A file operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`"open"`, `"write"`, ...).
        op: &'static str,
        /// The file it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The caller asked for something this crate refuses to do (a shrink, a write past the end, ...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The image is in a format Kiln does not handle here.
    #[error("unsupported image format {0:?}")]
    UnsupportedFormat(String),
    /// The image refers to other host files (a backing file, an external data file) or is
    /// otherwise unsafe to open on behalf of an untrusted uploader.
    #[error("refusing image {}: {reason}", path.display())]
    UnsafeImage {
        /// The image.
        path: PathBuf,
        /// Which property made it unsafe.
        reason: String,
    },
    /// `qemu-nbd` exited while Kiln was still using it.
    #[error("qemu-nbd exited ({status}): {stderr}")]
    NbdServerExited {
        /// How it exited.
        status: ExitStatus,
        /// What it wrote to stderr, trimmed.
        stderr: String,
    },
    /// `qemu-nbd` did not start listening in time.
    #[error("qemu-nbd did not listen on its socket within {0:?}")]
    NbdServerStart(Duration),
    /// The NBD conversation failed.
    #[error(transparent)]
    Nbd(#[from] NbdError),
}

/// A failure on an NBD connection.
#[derive(Debug, thiserror::Error)]
pub enum NbdError {
    /// The socket failed (connection refused, reset, broken pipe, ...).
    #[error("nbd socket error: {0}")]
    Io(#[source] io::Error),
    /// The server did not answer within the socket timeout.
    #[error("nbd server did not answer within {0:?}")]
    TimedOut(Duration),
    /// The server closed the connection in the middle of a message.
    #[error("nbd server closed the connection")]
    Closed,
    /// The server sent something this client does not understand.
    #[error("nbd protocol error: {0}")]
    Protocol(String),
    /// The server refused an option during the handshake.
    #[error("nbd server refused option {option}: reply {reply:#x} {message:?}")]
    OptionRefused {
        /// The option that was refused (`NBD_OPT_*`).
        option: u32,
        /// The error reply type (`NBD_REP_ERR_*`).
        reply: u32,
        /// The server's human-readable message, if any.
        message: String,
    },
    /// The server answered a read with an error number.
    #[error("nbd read of {length} bytes at {offset} failed with error {errno}")]
    ReadFailed {
        /// Start of the read.
        offset: u64,
        /// Length of the read.
        length: u32,
        /// The NBD error value (a Linux errno: 5 is EIO, 22 EINVAL, ...).
        errno: u32,
    },
    /// A read outside the export.
    #[error("read of {length} bytes at {offset} is outside the {size}-byte export")]
    OutOfRange {
        /// Start of the read.
        offset: u64,
        /// Length of the read.
        length: u64,
        /// Size of the export.
        size: u64,
    },
    /// An earlier failure left the connection in an unknown state; it cannot be used again.
    #[error("nbd connection is unusable after an earlier error")]
    Poisoned,
}

impl NbdError {
    /// Classifies a socket error: timeouts and EOF get their own variants.
    pub(crate) fn from_io(err: io::Error, timeout: Duration) -> NbdError {
        match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => NbdError::TimedOut(timeout),
            io::ErrorKind::UnexpectedEof => NbdError::Closed,
            _ => NbdError::Io(err),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = DiskError> = std::result::Result<T, E>;

pub(crate) fn io_err<'a>(op: &'static str, path: &'a std::path::Path) -> impl FnOnce(io::Error) -> DiskError + 'a {
    move |source| DiskError::Io { op, path: path.to_path_buf(), source }
}
