//! [`BlockReader`]: reads the guest-visible bytes of an image of any format through a private
//! `qemu-nbd` process, without converting the image.

use std::fs::File;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::argv;
use crate::error::{io_err, DiskError, NbdError, Result};
use crate::nbd::{NbdClient, DEFAULT_TIMEOUT};
use crate::run::trim_stderr;
use crate::Format;

/// How long `qemu-nbd` may take to start listening.
pub const NBD_START_TIMEOUT: Duration = Duration::from_secs(10);

/// A read-only view of an image, served by a `qemu-nbd` child this value owns.
///
/// The child listens on a unix socket in a private temporary directory and serves only this
/// reader. Dropping the reader disconnects, kills and reaps the child and removes the directory.
#[derive(Debug)]
pub struct BlockReader {
    client: Option<NbdClient>,
    child: Child,
    dir: TempDir,
}

impl BlockReader {
    /// Starts `qemu-nbd` on `path` (read as `format`, never probed) and connects to it.
    pub fn open(path: &Path, format: Format) -> Result<BlockReader> {
        let dir = tempfile::Builder::new()
            .prefix("kiln-nbd-")
            .tempdir()
            .map_err(io_err("create temporary directory for", path))?;
        let socket = dir.path().join("nbd.sock");
        let log_path = dir.path().join("qemu-nbd.log");
        let log = File::create(&log_path).map_err(io_err("create", &log_path))?;
        let cmd = argv::nbd_serve(path, format, &socket);
        let child = argv::bounded(&cmd, argv::Limits::of(cmd.program))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| DiskError::Spawn { program: cmd.program.to_string(), source })?;
        tracing::debug!(pid = child.id(), args = ?cmd.args_lossy(), "qemu-nbd started");
        let mut reader = BlockReader { client: None, child, dir };
        let stream = reader.wait_for_socket(&socket)?;
        reader.client = Some(NbdClient::handshake(stream, "", DEFAULT_TIMEOUT).map_err(|e| reader.explain(e))?);
        Ok(reader)
    }

    fn wait_for_socket(&mut self, socket: &Path) -> Result<UnixStream> {
        let deadline = Instant::now() + NBD_START_TIMEOUT;
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(status) = self.child.try_wait().map_err(io_err("wait for", Path::new("qemu-nbd")))? {
                return Err(self.exited(status));
            }
            if let Ok(stream) = UnixStream::connect(socket) {
                return Ok(stream);
            }
            if Instant::now() >= deadline {
                return Err(DiskError::NbdServerStart(NBD_START_TIMEOUT));
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    fn exited(&self, status: ExitStatus) -> DiskError {
        let log = std::fs::read(self.dir.path().join("qemu-nbd.log")).unwrap_or_default();
        DiskError::NbdServerExited { status, stderr: trim_stderr(&log) }
    }

    /// A broken connection is reported as the server's exit when the server is gone.
    fn explain(&mut self, err: NbdError) -> DiskError {
        if matches!(err, NbdError::Closed | NbdError::Io(_)) {
            // A dying server closes its socket a moment before it can be reaped.
            let deadline = Instant::now() + Duration::from_millis(200);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return self.exited(status);
                }
                thread::sleep(Duration::from_millis(5));
            }
        }
        DiskError::Nbd(err)
    }

    fn client(&mut self) -> &mut NbdClient {
        self.client.as_mut().expect("client is set from open until drop")
    }

    /// Size of the image as the guest sees it.
    pub fn size(&self) -> u64 {
        self.client.as_ref().map_or(0, NbdClient::size)
    }

    /// Process id of the `qemu-nbd` child, for diagnostics.
    pub fn server_pid(&self) -> u32 {
        self.child.id()
    }

    /// Changes the socket timeout (default [`DEFAULT_TIMEOUT`]): a read that gets no answer
    /// within it fails with [`NbdError::TimedOut`].
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<()> {
        self.client().set_timeout(timeout).map_err(DiskError::Nbd)
    }

    /// Fills `buf` with the image's bytes at `offset`.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let result = self.client().read_at(offset, buf);
        result.map_err(|e| self.explain(e))
    }

    /// Reads block `index` of `block_size` bytes; the last block of an image whose size is not
    /// a multiple of `block_size` comes back short.
    pub fn read_block(&mut self, index: u64, block_size: u64) -> Result<Vec<u8>> {
        let offset = block_offset(index, block_size, self.size())?;
        let len = block_size.min(self.size() - offset);
        let mut buf = vec![0u8; len as usize];
        self.read_at(offset, &mut buf)?;
        Ok(buf)
    }
}

/// Byte offset of block `index`, which must start inside an image of `size` bytes.
pub(crate) fn block_offset(index: u64, block_size: u64, size: u64) -> Result<u64> {
    match index.checked_mul(block_size) {
        Some(offset) if block_size > 0 && offset < size => Ok(offset),
        _ => Err(DiskError::Invalid(format!("block {index} of {block_size} bytes is outside a {size}-byte image"))),
    }
}

impl Drop for BlockReader {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.disconnect();
        }
        // Read-only export: nothing to flush, so SIGKILL is safe and cannot be ignored.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
