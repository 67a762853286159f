//! A small read-only NBD client over a unix socket.
//!
//! # Protocol subset
//!
//! The subset of the NBD protocol (<https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md>)
//! this client speaks; every integer is big-endian.
//!
//! **Handshake: fixed newstyle only.** The server sends `"NBDMAGIC"`, `IHAVEOPT`
//! (`0x49484156454F5054`) and 16 bits of handshake flags; the client answers 32 bits of client
//! flags, echoing `FIXED_NEWSTYLE` (bit 0) and `NO_ZEROES` (bit 1) when the server offers them.
//! Oldstyle servers are refused.
//!
//! **Options.** Each option is `IHAVEOPT`, a 32-bit option number, a 32-bit length and the data.
//! - `NBD_OPT_GO` (7), data: 32-bit name length, export name, 16-bit count (1) and one
//!   information request, `NBD_INFO_BLOCK_SIZE` (3). The server answers a series of option
//!   replies (magic `0x3e889045565a9`, option, 32-bit reply type, 32-bit length, data):
//!   `NBD_REP_INFO` (3) carrying `NBD_INFO_EXPORT` (0: 64-bit size, 16-bit transmission flags)
//!   or `NBD_INFO_BLOCK_SIZE` (3: minimum, preferred and maximum block size, 32 bits each;
//!   other information types are skipped), then `NBD_REP_ACK` (1). A reply type with bit 31
//!   set is an error (`NBD_REP_ERR_*`) whose data is a message.
//! - `NBD_OPT_EXPORT_NAME` (1), data: the export name. Used only when the server answers GO
//!   with `NBD_REP_ERR_UNSUP` or is not fixed-newstyle. The server answers with no reply
//!   header: 64-bit size, 16-bit transmission flags and 124 zero bytes unless `NO_ZEROES` was
//!   agreed.
//!
//! **Transmission.** Requests are 28 bytes: magic `0x25609513`, 16-bit command flags (always 0
//! here), 16-bit type, 64-bit cookie, 64-bit offset, 32-bit length. Only `NBD_CMD_READ` (0) and
//! `NBD_CMD_DISC` (2) are sent, one request in flight at a time. Structured replies are never
//! negotiated, so every read is answered by a 16-byte simple reply (magic `0x67446698`, 32-bit
//! error, 64-bit cookie) followed by `length` bytes of data only when the error is 0.
//!
//! Reads respect the server's block-size constraints: they are split at the maximum payload
//! (capped at 32 MiB, the protocol's default) and widened to the minimum block size when the
//! server asks for alignment. Every socket operation has a timeout; after a timeout or any
//! broken message the connection is marked unusable and every later call fails with
//! [`NbdError::Poisoned`].

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::error::NbdError;

/// `"NBDMAGIC"`, the first eight bytes a server sends.
pub const NBD_MAGIC: u64 = 0x4e42_444d_4147_4943;
/// Newstyle negotiation magic (`"IHAVEOPT"`), also the prefix of every option.
pub const IHAVEOPT: u64 = 0x4948_4156_454F_5054;
/// Magic of an option reply.
pub const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// Magic of a transmission request.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Magic of a simple reply.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
/// Magic of a structured reply (never negotiated here; seeing one is a protocol error).
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

/// Server handshake flag: fixed newstyle.
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
/// Server handshake flag: the 124 zero bytes after `NBD_OPT_EXPORT_NAME` may be omitted.
pub const FLAG_NO_ZEROES: u16 = 1 << 1;
/// Client flag: fixed newstyle.
pub const FLAG_C_FIXED_NEWSTYLE: u32 = 1 << 0;
/// Client flag: omit the 124 zero bytes.
pub const FLAG_C_NO_ZEROES: u32 = 1 << 1;

/// Transmission flag: the export is read-only.
pub const TRANSMISSION_FLAG_READ_ONLY: u16 = 1 << 1;

/// Option: select an export and end negotiation, old form.
pub const OPT_EXPORT_NAME: u32 = 1;
/// Option: select an export and end negotiation, with replies.
pub const OPT_GO: u32 = 7;

/// Option reply: done.
pub const REP_ACK: u32 = 1;
/// Option reply: information about the export.
pub const REP_INFO: u32 = 3;
/// Option reply error: option not supported.
pub const REP_ERR_UNSUP: u32 = (1 << 31) + 1;

/// Information type: export size and flags.
pub const INFO_EXPORT: u16 = 0;
/// Information type: block size constraints.
pub const INFO_BLOCK_SIZE: u16 = 3;

/// Command: read.
pub const CMD_READ: u16 = 0;
/// Command: disconnect (no reply).
pub const CMD_DISC: u16 = 2;

/// Default maximum payload when the server does not state one, and the cap on any it states.
pub const DEFAULT_MAX_PAYLOAD: u32 = 32 << 20;
/// Longest export name the protocol allows.
pub const MAX_EXPORT_NAME: usize = 4096;
/// Socket timeout used unless the caller sets another.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest option reply this client accepts (replies are a few bytes plus an error message).
const MAX_OPTION_REPLY: u32 = 64 * 1024;

/// What the handshake learned about the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportInfo {
    /// Export size in bytes.
    pub size: u64,
    /// Transmission flags (`NBD_FLAG_*`).
    pub flags: u16,
    /// Minimum block size: offsets and lengths of reads are multiples of it.
    pub min_block: u32,
    /// Largest read payload this client sends.
    pub max_payload: u32,
}

/// One option reply header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionReplyHeader {
    /// The option being answered.
    pub option: u32,
    /// The reply type (`NBD_REP_*`).
    pub reply: u32,
    /// Length of the data that follows.
    pub length: u32,
}

/// One simple reply header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimpleReply {
    /// 0 on success, else an errno value.
    pub error: u32,
    /// The cookie of the request this answers.
    pub cookie: u64,
}

/// Encodes one option: `IHAVEOPT`, option number, length, data.
pub fn encode_option(option: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + data.len());
    out.extend_from_slice(&IHAVEOPT.to_be_bytes());
    out.extend_from_slice(&option.to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// Encodes the data of `NBD_OPT_GO` for `export_name`, asking for block size information.
pub fn encode_go_data(export_name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + export_name.len());
    out.extend_from_slice(&(export_name.len() as u32).to_be_bytes());
    out.extend_from_slice(export_name.as_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
    out
}

/// Encodes a transmission request.
pub fn encode_request(command: u16, cookie: u64, offset: u64, length: u32) -> [u8; 28] {
    let mut out = [0u8; 28];
    out[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
    out[4..6].copy_from_slice(&0u16.to_be_bytes());
    out[6..8].copy_from_slice(&command.to_be_bytes());
    out[8..16].copy_from_slice(&cookie.to_be_bytes());
    out[16..24].copy_from_slice(&offset.to_be_bytes());
    out[24..28].copy_from_slice(&length.to_be_bytes());
    out
}

/// Decodes an option reply header.
pub fn decode_option_reply(bytes: &[u8; 20]) -> Result<OptionReplyHeader, NbdError> {
    let magic = be_u64(&bytes[0..8]);
    if magic != OPTION_REPLY_MAGIC {
        return Err(NbdError::Protocol(format!("bad option reply magic {magic:#x}")));
    }
    Ok(OptionReplyHeader {
        option: be_u32(&bytes[8..12]),
        reply: be_u32(&bytes[12..16]),
        length: be_u32(&bytes[16..20]),
    })
}

/// Decodes a transmission reply header; refuses structured replies.
pub fn decode_simple_reply(bytes: &[u8; 16]) -> Result<SimpleReply, NbdError> {
    match be_u32(&bytes[0..4]) {
        SIMPLE_REPLY_MAGIC => Ok(SimpleReply { error: be_u32(&bytes[4..8]), cookie: be_u64(&bytes[8..16]) }),
        STRUCTURED_REPLY_MAGIC => Err(NbdError::Protocol("structured reply without negotiation".into())),
        magic => Err(NbdError::Protocol(format!("bad reply magic {magic:#x}"))),
    }
}

/// Applies one `NBD_REP_INFO` payload to what is known so far. Unknown types are ignored.
fn apply_info(data: &[u8], size: &mut Option<(u64, u16)>, block: &mut Option<(u32, u32)>) -> Result<(), NbdError> {
    if data.len() < 2 {
        return Err(NbdError::Protocol("short NBD_REP_INFO".into()));
    }
    match be_u16(&data[0..2]) {
        INFO_EXPORT if data.len() == 12 => *size = Some((be_u64(&data[2..10]), be_u16(&data[10..12]))),
        INFO_BLOCK_SIZE if data.len() == 14 => {
            let (min, max) = (be_u32(&data[2..6]), be_u32(&data[10..14]));
            if min == 0 || !min.is_power_of_two() || max < min {
                return Err(NbdError::Protocol(format!("bad block sizes min {min} max {max}")));
            }
            *block = Some((min, max));
        }
        INFO_EXPORT | INFO_BLOCK_SIZE => return Err(NbdError::Protocol("NBD_REP_INFO of wrong length".into())),
        _ => {}
    }
    Ok(())
}

fn be_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes(b.try_into().expect("two bytes"))
}
fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b.try_into().expect("four bytes"))
}
fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b.try_into().expect("eight bytes"))
}

/// A connected NBD client, in transmission phase, reading one export.
#[derive(Debug)]
pub struct NbdClient {
    stream: UnixStream,
    export: ExportInfo,
    timeout: Duration,
    next_cookie: u64,
    poisoned: bool,
}

impl NbdClient {
    /// Connects to an NBD server on a unix socket (`qemu-nbd`, `qemu-storage-daemon`, or a
    /// running QEMU's `nbd-server-start`) and selects `export_name`.
    pub fn connect_unix(path: &Path, export_name: &str) -> Result<NbdClient, NbdError> {
        NbdClient::connect_unix_with_timeout(path, export_name, DEFAULT_TIMEOUT)
    }

    /// Like [`NbdClient::connect_unix`] with a socket timeout other than [`DEFAULT_TIMEOUT`].
    pub fn connect_unix_with_timeout(path: &Path, export_name: &str, timeout: Duration) -> Result<NbdClient, NbdError> {
        let stream = UnixStream::connect(path).map_err(NbdError::Io)?;
        NbdClient::handshake(stream, export_name, timeout)
    }

    /// Runs the handshake on an already connected stream.
    pub fn handshake(stream: UnixStream, export_name: &str, timeout: Duration) -> Result<NbdClient, NbdError> {
        if export_name.len() > MAX_EXPORT_NAME {
            return Err(NbdError::Protocol(format!("export name longer than {MAX_EXPORT_NAME} bytes")));
        }
        let mut client = NbdClient {
            stream,
            export: ExportInfo { size: 0, flags: 0, min_block: 1, max_payload: DEFAULT_MAX_PAYLOAD },
            timeout,
            next_cookie: 1,
            poisoned: false,
        };
        client.set_timeout(timeout)?;
        client.export = client.negotiate(export_name)?;
        Ok(client)
    }

    /// Size of the export in bytes.
    pub fn size(&self) -> u64 {
        self.export.size
    }

    /// Everything the handshake learned about the export.
    pub fn export_info(&self) -> ExportInfo {
        self.export
    }

    /// Changes the timeout for every later socket read and write.
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), NbdError> {
        self.timeout = timeout;
        self.stream.set_read_timeout(Some(timeout)).map_err(NbdError::Io)?;
        self.stream.set_write_timeout(Some(timeout)).map_err(NbdError::Io)
    }

    fn negotiate(&mut self, export_name: &str) -> Result<ExportInfo, NbdError> {
        let mut hello = [0u8; 18];
        self.recv(&mut hello)?;
        if be_u64(&hello[0..8]) != NBD_MAGIC {
            return Err(NbdError::Protocol("server did not send NBDMAGIC".into()));
        }
        if be_u64(&hello[8..16]) != IHAVEOPT {
            return Err(NbdError::Protocol("not a newstyle server".into()));
        }
        let server_flags = be_u16(&hello[16..18]);
        let fixed = server_flags & FLAG_FIXED_NEWSTYLE != 0;
        let no_zeroes = server_flags & FLAG_NO_ZEROES != 0;
        let mut client_flags = 0;
        if fixed {
            client_flags |= FLAG_C_FIXED_NEWSTYLE;
        }
        if no_zeroes {
            client_flags |= FLAG_C_NO_ZEROES;
        }
        self.send(&client_flags.to_be_bytes())?;

        if fixed {
            if let Some(info) = self.opt_go(export_name)? {
                return Ok(info);
            }
        }
        self.opt_export_name(export_name, no_zeroes)
    }

    /// `NBD_OPT_GO`; `None` when the server does not support it.
    fn opt_go(&mut self, export_name: &str) -> Result<Option<ExportInfo>, NbdError> {
        self.send(&encode_option(OPT_GO, &encode_go_data(export_name)))?;
        let (mut size, mut block) = (None, None);
        loop {
            let mut header = [0u8; 20];
            self.recv(&mut header)?;
            let header = decode_option_reply(&header)?;
            if header.option != OPT_GO {
                return Err(NbdError::Protocol(format!("reply for option {} while waiting for GO", header.option)));
            }
            if header.length > MAX_OPTION_REPLY {
                return Err(NbdError::Protocol(format!("option reply of {} bytes", header.length)));
            }
            let mut data = vec![0u8; header.length as usize];
            self.recv(&mut data)?;
            match header.reply {
                REP_INFO => apply_info(&data, &mut size, &mut block)?,
                REP_ACK => {
                    let (size, flags) =
                        size.ok_or_else(|| NbdError::Protocol("GO acknowledged without size".into()))?;
                    let (min_block, max_payload) = block.unwrap_or((1, DEFAULT_MAX_PAYLOAD));
                    let max_payload = max_payload.min(DEFAULT_MAX_PAYLOAD);
                    return Ok(Some(ExportInfo { size, flags, min_block, max_payload }));
                }
                REP_ERR_UNSUP => return Ok(None),
                reply if reply & (1 << 31) != 0 => {
                    let message = String::from_utf8_lossy(&data).into_owned();
                    return Err(NbdError::OptionRefused { option: OPT_GO, reply, message });
                }
                reply => return Err(NbdError::Protocol(format!("unexpected option reply {reply}"))),
            }
        }
    }

    fn opt_export_name(&mut self, export_name: &str, no_zeroes: bool) -> Result<ExportInfo, NbdError> {
        self.send(&encode_option(OPT_EXPORT_NAME, export_name.as_bytes()))?;
        let mut reply = vec![0u8; if no_zeroes { 10 } else { 134 }];
        self.recv(&mut reply)?;
        Ok(ExportInfo {
            size: be_u64(&reply[0..8]),
            flags: be_u16(&reply[8..10]),
            min_block: 1,
            max_payload: DEFAULT_MAX_PAYLOAD,
        })
    }

    /// Reads `buf.len()` bytes at `offset`. The range must lie inside the export.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), NbdError> {
        if self.poisoned {
            return Err(NbdError::Poisoned);
        }
        let size = self.export.size;
        let len = buf.len() as u64;
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(NbdError::OutOfRange { offset, length: len, size });
        }
        let min = u64::from(self.export.min_block);
        if offset.is_multiple_of(min) && len.is_multiple_of(min) {
            return self.read_aligned(offset, buf);
        }
        // Widen to whole minimum blocks; the export size is itself a multiple of the minimum.
        let start = offset - offset % min;
        let end = (offset + len).div_ceil(min) * min;
        let mut wide = vec![0u8; (end - start) as usize];
        self.read_aligned(start, &mut wide)?;
        let skip = (offset - start) as usize;
        buf.copy_from_slice(&wide[skip..skip + buf.len()]);
        Ok(())
    }

    fn read_aligned(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), NbdError> {
        let max = self.export.max_payload as usize;
        let max = max - max % self.export.min_block as usize;
        let mut done = 0;
        while done < buf.len() {
            let n = (buf.len() - done).min(max);
            self.read_one(offset + done as u64, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    fn read_one(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), NbdError> {
        let cookie = self.next_cookie;
        self.next_cookie += 1;
        let length = buf.len() as u32;
        self.send(&encode_request(CMD_READ, cookie, offset, length))?;
        let mut header = [0u8; 16];
        self.recv(&mut header)?;
        let reply = decode_simple_reply(&header).inspect_err(|_| self.poisoned = true)?;
        if reply.cookie != cookie {
            self.poisoned = true;
            return Err(NbdError::Protocol(format!("reply cookie {} for request {cookie}", reply.cookie)));
        }
        if reply.error != 0 {
            return Err(NbdError::ReadFailed { offset, length, errno: reply.error });
        }
        self.recv(buf)
    }

    /// Sends `NBD_CMD_DISC` and closes the connection.
    pub fn disconnect(mut self) -> Result<(), NbdError> {
        self.disconnect_inner()
    }

    fn disconnect_inner(&mut self) -> Result<(), NbdError> {
        if self.poisoned {
            return Ok(());
        }
        self.poisoned = true;
        let request = encode_request(CMD_DISC, self.next_cookie, 0, 0);
        let sent = self.stream.write_all(&request).map_err(|e| NbdError::from_io(e, self.timeout));
        let _ = self.stream.shutdown(Shutdown::Both);
        sent
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), NbdError> {
        let timeout = self.timeout;
        self.stream.write_all(bytes).map_err(|e| {
            self.poisoned = true;
            NbdError::from_io(e, timeout)
        })
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<(), NbdError> {
        let timeout = self.timeout;
        self.stream.read_exact(buf).map_err(|e| {
            self.poisoned = true;
            NbdError::from_io(e, timeout)
        })
    }
}

impl Drop for NbdClient {
    fn drop(&mut self) {
        let _ = self.disconnect_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn read_request_encoding_is_stable() {
        let bytes = encode_request(CMD_READ, 0x0102_0304_0506_0708, 0x0000_0001_0000_0200, 0x0008_0000);
        assert_eq!(
            bytes,
            [
                0x25, 0x60, 0x95, 0x13, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x00,
                0x00, 0x00, 0x01, 0x00, 0x00, 0x02, 0x00, 0x00, 0x08, 0x00, 0x00
            ]
        );
        assert_eq!(&encode_request(CMD_DISC, 9, 0, 0)[6..8], &[0, 2]);
    }

    #[test]
    fn go_option_encoding_is_stable() {
        let bytes = encode_option(OPT_GO, &encode_go_data("vda"));
        let mut expected = b"IHAVEOPT".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 11, 0, 0, 0, 3, b'v', b'd', b'a', 0, 1, 0, 3]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn simple_reply_decodes_and_structured_reply_is_refused() {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
        b[4..8].copy_from_slice(&5u32.to_be_bytes());
        b[8..16].copy_from_slice(&42u64.to_be_bytes());
        assert_eq!(decode_simple_reply(&b).unwrap(), SimpleReply { error: 5, cookie: 42 });
        b[0..4].copy_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
        assert!(matches!(decode_simple_reply(&b), Err(NbdError::Protocol(_))));
    }

    #[test]
    fn option_reply_header_decodes() {
        let mut b = [0u8; 20];
        b[0..8].copy_from_slice(&OPTION_REPLY_MAGIC.to_be_bytes());
        b[8..12].copy_from_slice(&OPT_GO.to_be_bytes());
        b[12..16].copy_from_slice(&REP_INFO.to_be_bytes());
        b[16..20].copy_from_slice(&12u32.to_be_bytes());
        assert_eq!(decode_option_reply(&b).unwrap(), OptionReplyHeader { option: 7, reply: 3, length: 12 });
        b[0] = 1;
        assert!(decode_option_reply(&b).is_err());
    }

    #[test]
    fn info_replies_set_size_and_block_limits() {
        let (mut size, mut block) = (None, None);
        let mut export = INFO_EXPORT.to_be_bytes().to_vec();
        export.extend_from_slice(&(1u64 << 30).to_be_bytes());
        export.extend_from_slice(&3u16.to_be_bytes());
        apply_info(&export, &mut size, &mut block).unwrap();
        let mut sizes = INFO_BLOCK_SIZE.to_be_bytes().to_vec();
        for v in [512u32, 4096, 1 << 25] {
            sizes.extend_from_slice(&v.to_be_bytes());
        }
        apply_info(&sizes, &mut size, &mut block).unwrap();
        assert_eq!((size, block), (Some((1 << 30, 3)), Some((512, 1 << 25))));
        sizes[2..6].copy_from_slice(&3u32.to_be_bytes());
        assert!(apply_info(&sizes, &mut size, &mut block).is_err());
    }

    /// A scripted server: GO answered with export info and an alignment of 512, reads served
    /// from a pattern where byte i is `i % 251`.
    fn fake_server(server: UnixStream, size: u64, support_go: bool) -> thread::JoinHandle<Vec<(u64, u32)>> {
        thread::spawn(move || {
            let mut s = server;
            let mut reads = Vec::new();
            s.write_all(&NBD_MAGIC.to_be_bytes()).unwrap();
            s.write_all(&IHAVEOPT.to_be_bytes()).unwrap();
            s.write_all(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes()).unwrap();
            let mut flags = [0u8; 4];
            s.read_exact(&mut flags).unwrap();
            assert_eq!(u32::from_be_bytes(flags), FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES);
            loop {
                let mut head = [0u8; 16];
                s.read_exact(&mut head).unwrap();
                let option = be_u32(&head[8..12]);
                let mut data = vec![0u8; be_u32(&head[12..16]) as usize];
                s.read_exact(&mut data).unwrap();
                let reply = |s: &mut UnixStream, kind: u32, data: &[u8]| {
                    s.write_all(&OPTION_REPLY_MAGIC.to_be_bytes()).unwrap();
                    s.write_all(&option.to_be_bytes()).unwrap();
                    s.write_all(&kind.to_be_bytes()).unwrap();
                    s.write_all(&(data.len() as u32).to_be_bytes()).unwrap();
                    s.write_all(data).unwrap();
                };
                match option {
                    OPT_GO if !support_go => reply(&mut s, REP_ERR_UNSUP, b"no GO here"),
                    OPT_GO => {
                        let mut info = INFO_EXPORT.to_be_bytes().to_vec();
                        info.extend_from_slice(&size.to_be_bytes());
                        info.extend_from_slice(&TRANSMISSION_FLAG_READ_ONLY.to_be_bytes());
                        reply(&mut s, REP_INFO, &info);
                        let mut sizes = INFO_BLOCK_SIZE.to_be_bytes().to_vec();
                        for v in [512u32, 4096, 4096] {
                            sizes.extend_from_slice(&v.to_be_bytes());
                        }
                        reply(&mut s, REP_INFO, &sizes);
                        reply(&mut s, REP_INFO, &[0, 9, 1, 2]); // unknown type: skipped
                        reply(&mut s, REP_ACK, &[]);
                        break;
                    }
                    OPT_EXPORT_NAME => {
                        s.write_all(&size.to_be_bytes()).unwrap();
                        s.write_all(&TRANSMISSION_FLAG_READ_ONLY.to_be_bytes()).unwrap();
                        break;
                    }
                    other => panic!("unexpected option {other}"),
                }
            }
            loop {
                let mut req = [0u8; 28];
                s.read_exact(&mut req).unwrap();
                assert_eq!(be_u32(&req[0..4]), REQUEST_MAGIC);
                let (kind, cookie, offset, len) =
                    (be_u16(&req[6..8]), &req[8..16], be_u64(&req[16..24]), be_u32(&req[24..28]));
                if kind == CMD_DISC {
                    return reads;
                }
                reads.push((offset, len));
                s.write_all(&SIMPLE_REPLY_MAGIC.to_be_bytes()).unwrap();
                s.write_all(&0u32.to_be_bytes()).unwrap();
                s.write_all(cookie).unwrap();
                let data: Vec<u8> = (offset..offset + u64::from(len)).map(|i| (i % 251) as u8).collect();
                s.write_all(&data).unwrap();
            }
        })
    }

    #[test]
    fn go_handshake_then_unaligned_split_read_then_disconnect() {
        let (client, server) = UnixStream::pair().unwrap();
        let server = fake_server(server, 1 << 20, true);
        let mut nbd = NbdClient::handshake(client, "", Duration::from_secs(5)).unwrap();
        assert_eq!(
            nbd.export_info(),
            ExportInfo { size: 1 << 20, flags: TRANSMISSION_FLAG_READ_ONLY, min_block: 512, max_payload: 4096 }
        );
        let mut buf = vec![0u8; 5000];
        nbd.read_at(100, &mut buf).unwrap();
        let expected: Vec<u8> = (100..5100u64).map(|i| (i % 251) as u8).collect();
        assert_eq!(buf, expected);
        assert!(matches!(nbd.read_at((1 << 20) - 10, &mut buf), Err(NbdError::OutOfRange { .. })));
        nbd.disconnect().unwrap();
        assert_eq!(server.join().unwrap(), vec![(0, 4096), (4096, 1024)]);
    }

    #[test]
    fn export_name_fallback_when_go_is_unsupported() {
        let (client, server) = UnixStream::pair().unwrap();
        let server = fake_server(server, 8192, false);
        let mut nbd = NbdClient::handshake(client, "disk", Duration::from_secs(5)).unwrap();
        assert_eq!(nbd.size(), 8192);
        let mut buf = [0u8; 3];
        nbd.read_at(8189, &mut buf).unwrap();
        assert_eq!(buf, [(8189 % 251) as u8, (8190 % 251) as u8, (8191 % 251) as u8]);
        drop(nbd);
        assert_eq!(server.join().unwrap(), vec![(8189, 3)]);
    }

    #[test]
    fn silent_server_times_out_and_poisons_the_connection() {
        let (client, server) = UnixStream::pair().unwrap();
        let err = NbdClient::handshake(client, "", Duration::from_millis(100)).unwrap_err();
        assert!(matches!(err, NbdError::TimedOut(_)), "{err:?}");
        drop(server);
    }

    #[test]
    fn closed_socket_is_reported_as_closed() {
        let (client, server) = UnixStream::pair().unwrap();
        drop(server);
        let err = NbdClient::handshake(client, "", Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, NbdError::Closed), "{err:?}");
    }
}
