//! Key-pair cryptography behind EC2's `CreateKeyPair` and `ImportKeyPair`.
//!
//! Everything here is pure: no storage, no request parsing. Fingerprints follow
//! EC2's conventions, which differ by key origin:
//!
//! | origin   | RSA                                         | ED25519                              |
//! |----------|---------------------------------------------|--------------------------------------|
//! | created  | SHA-1 of the DER PKCS#8 private key, `aa:bb` | base64 (padded) SHA-256 of SSH blob  |
//! | imported | MD5 of the DER SubjectPublicKeyInfo, `aa:bb` | base64 (padded) SHA-256 of SSH blob  |
//!
//! so a key created here and then re-imported gets a different RSA fingerprint,
//! exactly as on EC2.

use std::fmt::{self, Write as _};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use md5::Md5;
use rand::rngs::OsRng;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
use rsa::traits::{PrivateKeyParts as _, PublicKeyParts as _};
use rsa::BigUint;
use sha1::{Digest as _, Sha1};
use sha2::Sha256;
use ssh_key::private::{Ed25519Keypair, KeypairData, RsaKeypair};

/// Modulus size of RSA keys EC2 creates.
pub const CREATED_RSA_BITS: usize = 2048;
/// Smallest RSA modulus accepted by import.
pub const MIN_IMPORTED_RSA_BITS: usize = 1024;
/// Largest RSA modulus accepted by import.
pub const MAX_IMPORTED_RSA_BITS: usize = 16384;

const SSH_RSA: &str = "ssh-rsa";
const SSH_ED25519: &str = "ssh-ed25519";
const ED25519_KEY_LEN: usize = 32;
// OpenSSH caps RSA public exponents well below this; anything larger is a
// malformed or hostile key rather than a real one.
const MAX_RSA_EXPONENT_BITS: usize = 33;

/// Algorithm of a key pair, as carried in EC2's `KeyType` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// RSA; created keys are 2048-bit.
    Rsa,
    /// Ed25519.
    Ed25519,
}

impl KeyType {
    /// Parses the EC2 wire value (`rsa`, `ed25519`); EC2 enum values are case-sensitive.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rsa" => Some(Self::Rsa),
            "ed25519" => Some(Self::Ed25519),
            _ => None,
        }
    }

    /// The EC2 wire value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Rsa => "rsa",
            Self::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Encoding of a created private key, as carried in EC2's `KeyFormat` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// PEM: PKCS#1 for RSA; OpenSSH's own format for Ed25519, as EC2 does.
    Pem,
    /// OpenSSH private key format (`-----BEGIN OPENSSH PRIVATE KEY-----`).
    OpenSsh,
    /// Unencrypted PuTTY private key file, version 2.
    Ppk,
}

impl KeyFormat {
    /// Parses the wire value (`pem`, `openssh`, `ppk`); case-sensitive like EC2.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pem" => Some(Self::Pem),
            "openssh" => Some(Self::OpenSsh),
            "ppk" => Some(Self::Ppk),
            _ => None,
        }
    }

    /// The wire value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pem => "pem",
            Self::OpenSsh => "openssh",
            Self::Ppk => "ppk",
        }
    }
}

impl fmt::Display for KeyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A freshly created key pair.
pub struct GeneratedKey {
    /// Private key in the requested format; returned to the caller once, never stored.
    pub private_key_material: String,
    /// `ssh-rsa AAAA…` / `ssh-ed25519 AAAA…` without a comment; safe to store.
    pub public_key_openssh: String,
    /// Fingerprint as EC2 computes it for keys it creates.
    pub fingerprint: String,
}

// Hand-written so the private key can never end up in a log line via `{:?}`.
impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("private_key_material", &"<redacted>")
            .field("public_key_openssh", &self.public_key_openssh)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// A validated public key supplied through `ImportKeyPair`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedKey {
    /// Algorithm of the imported key.
    pub key_type: KeyType,
    /// Canonical `type base64` line without the client's comment; safe to store.
    pub public_key_openssh: String,
    /// Fingerprint as EC2 computes it for imported keys.
    pub fingerprint: String,
}

/// Failure to create or import a key pair.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The supplied key material is malformed or of a kind that cannot be imported.
    #[error("invalid key format: {0}")]
    Format(String),
    /// The request is well-formed but asks for something not offered.
    #[error("unsupported key: {0}")]
    Unsupported(String),
    /// Key generation or encoding failed unexpectedly.
    #[error("internal key error: {0}")]
    Internal(String),
}

fn format_err(msg: impl Into<String>) -> KeyError {
    KeyError::Format(msg.into())
}

fn internal<E: fmt::Display>(context: &'static str) -> impl FnOnce(E) -> KeyError {
    move |e| KeyError::Internal(format!("{context}: {e}"))
}

/// Creates a new key pair of `key_type`, encoding the private key as `format`.
///
/// `comment` (normally the key name) is embedded in OpenSSH and PuTTY private
/// keys; the returned public key line carries no comment.
pub fn generate(key_type: KeyType, format: KeyFormat, comment: &str) -> Result<GeneratedKey, KeyError> {
    let comment = sanitize_comment(comment);
    match key_type {
        KeyType::Rsa => generate_rsa(format, &comment),
        KeyType::Ed25519 => generate_ed25519(format, &comment),
    }
}

fn generate_rsa(format: KeyFormat, comment: &str) -> Result<GeneratedKey, KeyError> {
    let key = rsa::RsaPrivateKey::new(&mut OsRng, CREATED_RSA_BITS).map_err(internal("generating RSA key"))?;
    let key = with_larger_prime_first(key)?;

    let pkcs8 = key.to_pkcs8_der().map_err(internal("encoding RSA key as PKCS#8"))?;
    let fingerprint = colon_hex(&Sha1::digest(pkcs8.as_bytes()));

    let public_blob = rsa_public_blob(key.e(), key.n());
    let public_key_openssh = openssh_line(SSH_RSA, &public_blob);

    let private_key_material = match format {
        KeyFormat::Pem => {
            key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).map_err(internal("encoding RSA key as PKCS#1"))?.to_string()
        }
        KeyFormat::OpenSsh => {
            let keypair = RsaKeypair::try_from(&key).map_err(internal("converting RSA key"))?;
            openssh_private(KeypairData::Rsa(keypair), comment)?
        }
        KeyFormat::Ppk => {
            let iqmp =
                key.crt_coefficient().ok_or_else(|| KeyError::Internal("RSA key has no CRT coefficient".into()))?;
            let [p, q] = key.primes() else {
                return Err(KeyError::Internal("RSA key is not two-prime".into()));
            };
            let mut private_blob = Vec::new();
            put_mpint(&mut private_blob, key.d());
            put_mpint(&mut private_blob, p);
            put_mpint(&mut private_blob, q);
            put_mpint(&mut private_blob, &iqmp);
            ppk_v2(SSH_RSA, comment, &public_blob, &private_blob)
        }
    };

    Ok(GeneratedKey { private_key_material, public_key_openssh, fingerprint })
}

/// PuTTY silently reorders primes so that p > q (OpenSSL generates them that
/// way too). Doing the same up front keeps the PKCS#1 encoding, and so the
/// fingerprint, identical whichever format the key is later converted through.
fn with_larger_prime_first(key: rsa::RsaPrivateKey) -> Result<rsa::RsaPrivateKey, KeyError> {
    match key.primes() {
        [p, q] if p < q => rsa::RsaPrivateKey::from_components(
            key.n().clone(),
            key.e().clone(),
            key.d().clone(),
            vec![q.clone(), p.clone()],
        )
        .map_err(internal("reordering RSA primes")),
        _ => Ok(key),
    }
}

fn generate_ed25519(format: KeyFormat, comment: &str) -> Result<GeneratedKey, KeyError> {
    let keypair = Ed25519Keypair::random(&mut OsRng);
    let public_blob = ed25519_public_blob(&keypair.public.0);
    let public_key_openssh = openssh_line(SSH_ED25519, &public_blob);
    let fingerprint = sha256_fingerprint(&public_blob);

    let private_key_material = match format {
        // EC2 has no PEM encoding for Ed25519 and hands out OpenSSH's format instead.
        KeyFormat::Pem | KeyFormat::OpenSsh => openssh_private(KeypairData::Ed25519(keypair), comment)?,
        KeyFormat::Ppk => {
            let mut private_blob = Vec::new();
            put_string(&mut private_blob, &keypair.private.to_bytes());
            ppk_v2(SSH_ED25519, comment, &public_blob, &private_blob)
        }
    };

    Ok(GeneratedKey { private_key_material, public_key_openssh, fingerprint })
}

fn openssh_private(data: KeypairData, comment: &str) -> Result<String, KeyError> {
    let key = ssh_key::PrivateKey::new(data, comment).map_err(internal("building OpenSSH private key"))?;
    let pem = key.to_openssh(ssh_key::LineEnding::LF).map_err(internal("encoding OpenSSH private key"))?;
    Ok(pem.to_string())
}

/// Validates the public key sent as `ImportKeyPair`'s `PublicKeyMaterial`.
///
/// Accepts the formats EC2 documents: an OpenSSH public key line (`ssh-rsa`
/// with a 1024..=16384-bit modulus, or `ssh-ed25519`, with or without a
/// trailing comment), and for RSA only an RFC 4716 `---- BEGIN SSH2 PUBLIC
/// KEY ----` block (what PuTTYgen saves) or base64 DER (SubjectPublicKeyInfo
/// or PKCS#1). Everything else is [`KeyError::Format`].
pub fn import(material: &[u8]) -> Result<ImportedKey, KeyError> {
    let Ok(text) = std::str::from_utf8(material) else {
        // The Query layer base64-decodes the blob once, so a client that sent
        // base64 DER without the SDK's extra encoding arrives here as DER bytes.
        return import_rsa_der(material);
    };
    let line = text.trim();
    if line.is_empty() {
        return Err(format_err("public key material is empty"));
    }
    if line.starts_with(RFC4716_BEGIN) {
        let blob = rfc4716_blob(line)?;
        if Reader::new(&blob).string()? != SSH_RSA.as_bytes() {
            return Err(format_err(
                "only RSA keys are accepted in RFC 4716 format; import ED25519 keys as an OpenSSH line",
            ));
        }
        return import_blob(SSH_RSA, KeyType::Rsa, &blob);
    }
    // An OpenSSH line always has a space after the key type; one bare base64 word
    // that decodes to an ASN.1 SEQUENCE is DER.
    if !line.contains(char::is_whitespace) {
        if let Ok(der) = STANDARD.decode(line) {
            if der.first() == Some(&0x30) {
                return import_rsa_der(&der);
            }
        }
    }
    if line.starts_with("-----BEGIN") {
        return Err(if line.contains("PRIVATE KEY") {
            format_err("this is a private key; import only the OpenSSH public key line")
        } else {
            format_err("PEM blocks are not accepted; supply an OpenSSH public key line")
        });
    }
    if line.contains(['\n', '\r']) {
        return Err(format_err("expected a single OpenSSH public key line, found several lines"));
    }

    let mut fields = line.split_ascii_whitespace();
    let algorithm = fields.next().unwrap_or_default();
    let key_type = match algorithm {
        SSH_RSA => KeyType::Rsa,
        SSH_ED25519 => KeyType::Ed25519,
        "ssh-dss" => return Err(format_err("DSA keys are not supported; use RSA or ED25519")),
        a if a.starts_with("ecdsa-") || a.starts_with("sk-") => {
            return Err(format_err(format!("{} keys are not supported; use RSA or ED25519", printable(a))))
        }
        a => {
            return Err(format_err(format!(
                "unrecognised key type {:?}; expected ssh-rsa or ssh-ed25519",
                printable(a)
            )))
        }
    };
    let encoded = fields.next().ok_or_else(|| format_err("missing base64 key data after the key type"))?;
    let blob = STANDARD.decode(encoded).map_err(|_| format_err("key data is not valid base64"))?;
    import_blob(algorithm, key_type, &blob)
}

const RFC4716_BEGIN: &str = "---- BEGIN SSH2 PUBLIC KEY ----";
const RFC4716_END: &str = "---- END SSH2 PUBLIC KEY ----";

/// The SSH key blob inside an RFC 4716 block. Header lines (`Comment: ...`)
/// contain a colon, which base64 never does, and continue onto the next line
/// when they end with a backslash.
fn rfc4716_blob(text: &str) -> Result<Vec<u8>, KeyError> {
    let mut lines = text.lines().map(str::trim);
    lines.next();
    let mut body = String::new();
    let mut continued = false;
    let mut ended = false;
    for line in lines {
        if ended {
            return Err(format_err("text after the RFC 4716 end line"));
        }
        if line == RFC4716_END {
            ended = true;
        } else if continued || line.contains(':') {
            continued = line.ends_with('\\');
        } else {
            body.push_str(line);
        }
    }
    if !ended {
        return Err(format_err("RFC 4716 key has no end line"));
    }
    STANDARD.decode(body).map_err(|_| format_err("RFC 4716 key data is not valid base64"))
}

/// An RSA public key in DER: SubjectPublicKeyInfo, or a bare PKCS#1 RSAPublicKey.
fn import_rsa_der(der: &[u8]) -> Result<ImportedKey, KeyError> {
    use rsa::pkcs1::DecodeRsaPublicKey as _;
    use rsa::pkcs8::DecodePublicKey as _;
    let key = rsa::RsaPublicKey::from_public_key_der(der)
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_der(der))
        .map_err(|_| format_err("key is neither an OpenSSH public key nor an RSA public key in DER"))?;
    import_blob(SSH_RSA, KeyType::Rsa, &rsa_public_blob(key.e(), key.n()))
}

/// Validates an SSH public key blob whose type the caller expects to be `algorithm`.
fn import_blob(algorithm: &str, key_type: KeyType, blob: &[u8]) -> Result<ImportedKey, KeyError> {
    let mut reader = Reader::new(blob);
    if reader.string()? != algorithm.as_bytes() {
        return Err(format_err("key type inside the key data does not match the line's key type"));
    }

    let fingerprint = match key_type {
        KeyType::Rsa => {
            let e = reader.mpint()?;
            let n = reader.mpint()?;
            reader.finish()?;
            rsa_import_fingerprint(e, n)?
        }
        KeyType::Ed25519 => {
            let point = reader.string()?;
            reader.finish()?;
            let point: [u8; ED25519_KEY_LEN] =
                point.try_into().map_err(|_| format_err("ED25519 public key must be 32 bytes"))?;
            ed25519_dalek::VerifyingKey::from_bytes(&point)
                .map_err(|_| format_err("ED25519 public key is not a valid curve point"))?;
            sha256_fingerprint(blob)
        }
    };

    Ok(ImportedKey { key_type, public_key_openssh: openssh_line(algorithm, blob), fingerprint })
}

fn rsa_import_fingerprint(e: &[u8], n: &[u8]) -> Result<String, KeyError> {
    let n = BigUint::from_bytes_be(n);
    let e = BigUint::from_bytes_be(e);
    let bits = n.bits();
    if !(MIN_IMPORTED_RSA_BITS..=MAX_IMPORTED_RSA_BITS).contains(&bits) {
        return Err(format_err(format!(
            "RSA modulus is {bits} bits; supported sizes are {MIN_IMPORTED_RSA_BITS} to {MAX_IMPORTED_RSA_BITS} bits"
        )));
    }
    let is_odd = |v: &BigUint| v.to_bytes_le().first().is_some_and(|b| b & 1 == 1);
    if !is_odd(&n) {
        return Err(format_err("RSA modulus is even"));
    }
    if !is_odd(&e) || e < BigUint::from(3u8) || e.bits() > MAX_RSA_EXPONENT_BITS {
        return Err(format_err("RSA public exponent is out of range"));
    }
    let key = rsa::RsaPublicKey::new_with_max_size(n, e, MAX_IMPORTED_RSA_BITS)
        .map_err(|err| format_err(format!("RSA public key rejected: {err}")))?;
    let spki = key.to_public_key_der().map_err(internal("encoding RSA public key"))?;
    Ok(colon_hex(&Md5::digest(spki.as_bytes())))
}

/// Reads RFC 4251 wire types, failing with a format error instead of panicking.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn string(&mut self) -> Result<&'a [u8], KeyError> {
        let truncated = || format_err("key data is truncated");
        let (len, rest) = self.buf.split_first_chunk::<4>().ok_or_else(truncated)?;
        let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| truncated())?;
        if rest.len() < len {
            return Err(truncated());
        }
        let (value, rest) = rest.split_at(len);
        self.buf = rest;
        Ok(value)
    }

    /// Returns the magnitude of a non-negative mpint, leading zeros stripped.
    fn mpint(&mut self) -> Result<&'a [u8], KeyError> {
        let raw = self.string()?;
        if raw.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(format_err("key data contains a negative integer"));
        }
        let start = raw.iter().position(|&b| b != 0).unwrap_or(raw.len());
        Ok(&raw[start..])
    }

    fn finish(self) -> Result<(), KeyError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(format_err("key data has trailing bytes"))
        }
    }
}

fn put_string(out: &mut Vec<u8>, value: &[u8]) {
    let len = u32::try_from(value.len()).expect("SSH string longer than 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
}

fn put_mpint(out: &mut Vec<u8>, value: &BigUint) {
    let bytes = value.to_bytes_be();
    let bytes: &[u8] = if bytes == [0] { &[] } else { &bytes };
    if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        // A set top bit would read back as negative, so pad with a zero byte.
        let len = u32::try_from(bytes.len() + 1).expect("mpint longer than 4 GiB");
        out.extend_from_slice(&len.to_be_bytes());
        out.push(0);
        out.extend_from_slice(bytes);
    } else {
        put_string(out, bytes);
    }
}

fn rsa_public_blob(e: &BigUint, n: &BigUint) -> Vec<u8> {
    let mut blob = Vec::new();
    put_string(&mut blob, SSH_RSA.as_bytes());
    put_mpint(&mut blob, e);
    put_mpint(&mut blob, n);
    blob
}

fn ed25519_public_blob(point: &[u8; ED25519_KEY_LEN]) -> Vec<u8> {
    let mut blob = Vec::new();
    put_string(&mut blob, SSH_ED25519.as_bytes());
    put_string(&mut blob, point);
    blob
}

fn openssh_line(algorithm: &str, blob: &[u8]) -> String {
    format!("{algorithm} {}", STANDARD.encode(blob))
}

fn colon_hex(digest: &[u8]) -> String {
    let mut out = String::with_capacity(digest.len() * 3);
    for (i, b) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02x}");
    }
    out
}

// EC2 keeps base64's '=' padding, unlike ssh-keygen's "SHA256:..." display.
fn sha256_fingerprint(public_blob: &[u8]) -> String {
    STANDARD.encode(Sha256::digest(public_blob))
}

// Both OpenSSH and PuTTY keep the comment on a single line; a control
// character would corrupt the file rather than just look odd.
fn sanitize_comment(comment: &str) -> String {
    comment.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn printable(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Renders an unencrypted `PuTTY-User-Key-File-2`, the version every PuTTY
/// release since 0.52 reads.
fn ppk_v2(algorithm: &str, comment: &str, public_blob: &[u8], private_blob: &[u8]) -> String {
    const ENCRYPTION: &str = "none";

    let mut mac_input = Vec::new();
    put_string(&mut mac_input, algorithm.as_bytes());
    put_string(&mut mac_input, ENCRYPTION.as_bytes());
    put_string(&mut mac_input, comment.as_bytes());
    put_string(&mut mac_input, public_blob);
    put_string(&mut mac_input, private_blob);
    // With an empty passphrase the MAC key is the hash of the fixed label alone.
    let mac_key = Sha1::digest(b"putty-private-key-file-mac-key");
    let mac = hmac_sha1(&mac_key, &mac_input);

    let mut out = String::new();
    let _ = writeln!(out, "PuTTY-User-Key-File-2: {algorithm}");
    let _ = writeln!(out, "Encryption: {ENCRYPTION}");
    let _ = writeln!(out, "Comment: {comment}");
    push_ppk_lines(&mut out, "Public-Lines", public_blob);
    push_ppk_lines(&mut out, "Private-Lines", private_blob);
    let _ = writeln!(out, "Private-MAC: {}", hex::encode(mac));
    out
}

fn push_ppk_lines(out: &mut String, header: &str, blob: &[u8]) {
    let encoded = STANDARD.encode(blob);
    // Base64 is ASCII, so slicing on 64-byte boundaries never splits a char.
    let lines: Vec<&str> = encoded.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    let _ = writeln!(out, "{header}: {}", lines.len());
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
}

// RFC 2104 over SHA-1; small enough that a dedicated crate isn't worth it.
fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let inner = Sha1::new().chain_update(block_key.map(|b| b ^ 0x36)).chain_update(data).finalize();
    Sha1::new().chain_update(block_key.map(|b| b ^ 0x5c)).chain_update(inner).finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write as _;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    // --- helpers -----------------------------------------------------------

    fn find_tool(name: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
    }

    fn tool_or_skip(name: &str) -> Option<PathBuf> {
        let found = find_tool(name);
        if found.is_none() {
            eprintln!("skipping external cross-check: {name} not found on PATH");
        }
        found
    }

    fn run(tool: &Path, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let mut child = Command::new(tool)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tool");
        child.stdin.take().expect("stdin").write_all(stdin).expect("write stdin");
        let out = child.wait_with_output().expect("wait tool");
        assert!(out.status.success(), "{} {:?} failed: {}", tool.display(), args, String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    fn run_text(tool: &Path, args: &[&str]) -> String {
        String::from_utf8(run(tool, args, b"")).expect("utf-8 output")
    }

    /// Writes a file readable only by its owner, as ssh-keygen insists for private keys.
    fn write_private(dir: &Path, name: &str, contents: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        path
    }

    fn s(p: &Path) -> &str {
        p.to_str().expect("utf-8 path")
    }

    /// `openssl pkcs8 -in K -inform PEM -outform DER -topk8 -nocrypt | openssl sha1 -c`
    fn openssl_created_fingerprint(openssl: &Path, pem: &Path) -> String {
        let der =
            run(openssl, &["pkcs8", "-in", s(pem), "-inform", "PEM", "-outform", "DER", "-topk8", "-nocrypt"], b"");
        digest_output(&run(openssl, &["sha1", "-c"], &der))
    }

    /// `ssh-keygen -ef K.pub -m PEM | openssl rsa -RSAPublicKey_in -outform DER | openssl md5 -c`
    fn openssl_imported_fingerprint(ssh_keygen: &Path, openssl: &Path, public: &Path) -> String {
        let pkcs1 = run(ssh_keygen, &["-e", "-f", s(public), "-m", "PEM"], b"");
        let der = run(openssl, &["rsa", "-RSAPublicKey_in", "-outform", "DER"], &pkcs1);
        digest_output(&run(openssl, &["md5", "-c"], &der))
    }

    // OpenSSL prints "SHA1(stdin)= aa:bb:..." (or "(stdin)= ..." in older releases).
    fn digest_output(out: &[u8]) -> String {
        let text = String::from_utf8(out.to_vec()).expect("utf-8 digest");
        text.rsplit("= ").next().expect("digest value").trim().to_string()
    }

    /// `ssh-keygen -l -E sha256 -f K` value after "SHA256:", with EC2's padding added.
    fn ssh_keygen_sha256(ssh_keygen: &Path, key: &Path) -> String {
        let out = run_text(ssh_keygen, &["-l", "-E", "sha256", "-f", s(key)]);
        let field = out.split_whitespace().find_map(|f| f.strip_prefix("SHA256:")).expect("SHA256 field");
        let mut padded = field.to_string();
        while padded.len() % 4 != 0 {
            padded.push('=');
        }
        padded
    }

    fn first_two_fields(line: &str) -> String {
        line.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
    }

    fn ssh_keygen_pair(ssh_keygen: &Path, dir: &Path, args: &[&str]) -> (PathBuf, String) {
        let path = dir.join("id");
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(dir.join("id.pub"));
        let mut full = vec!["-q", "-N", "", "-C", "user@example", "-f", s(&path)];
        full.extend_from_slice(args);
        run(ssh_keygen, &full, b"");
        let public = std::fs::read_to_string(dir.join("id.pub")).expect("read .pub");
        (dir.join("id.pub"), public)
    }

    fn is_colon_hex(s: &str, bytes: usize) -> bool {
        s.len() == bytes * 3 - 1
            && s.split(':').all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    }

    fn assert_format_err(material: &[u8]) -> String {
        match import(material) {
            Err(KeyError::Format(msg)) => msg,
            other => panic!("expected Format error for {:?}, got {other:?}", String::from_utf8_lossy(material)),
        }
    }

    fn rsa_blob_with(e: &[u8], n: &[u8]) -> Vec<u8> {
        let mut blob = Vec::new();
        put_string(&mut blob, b"ssh-rsa");
        put_mpint(&mut blob, &BigUint::from_bytes_be(e));
        put_mpint(&mut blob, &BigUint::from_bytes_be(n));
        blob
    }

    /// Parses a PPK v2 file independently of the writer and checks its MAC.
    fn parse_ppk(text: &str) -> (String, Vec<u8>, Vec<u8>) {
        let mut lines = text.lines();
        let mut header = |name: &str| {
            let line = lines.next().expect("header line");
            line.strip_prefix(name)
                .and_then(|l| l.strip_prefix(": "))
                .unwrap_or_else(|| panic!("expected {name}, got {line}"))
                .to_string()
        };
        let algorithm = header("PuTTY-User-Key-File-2");
        assert_eq!(header("Encryption"), "none");
        let comment = header("Comment");
        let public_count: usize = header("Public-Lines").parse().expect("count");
        let mut rest: Vec<&str> = text.lines().skip(4).collect();
        let public_lines: Vec<&str> = rest.drain(..public_count).collect();
        let private_header = rest.remove(0);
        let private_count: usize =
            private_header.strip_prefix("Private-Lines: ").expect("Private-Lines").parse().expect("count");
        let private_lines: Vec<&str> = rest.drain(..private_count).collect();
        let mac_hex = rest.remove(0).strip_prefix("Private-MAC: ").expect("Private-MAC").to_string();
        assert!(rest.is_empty(), "unexpected trailing lines: {rest:?}");
        // PuTTY wraps base64 at 64 columns; only the last line may be shorter.
        for lines in [&public_lines, &private_lines] {
            let (last, full) = lines.split_last().expect("at least one line");
            assert!(full.iter().all(|l| l.len() == 64) && last.len() <= 64);
        }

        let public = STANDARD.decode(public_lines.concat()).expect("public base64");
        let private = STANDARD.decode(private_lines.concat()).expect("private base64");
        let mut mac_input = Vec::new();
        for field in [algorithm.as_bytes(), b"none", comment.as_bytes(), &public, &private] {
            put_string(&mut mac_input, field);
        }
        let key = Sha1::digest(b"putty-private-key-file-mac-key");
        assert_eq!(hex::encode(hmac_sha1(&key, &mac_input)), mac_hex);
        (comment, public, private)
    }

    // --- enums -------------------------------------------------------------

    #[test]
    fn wire_values_round_trip_and_are_case_sensitive() {
        for t in [KeyType::Rsa, KeyType::Ed25519] {
            assert_eq!(KeyType::parse(t.as_str()), Some(t));
            assert_eq!(t.to_string(), t.as_str());
        }
        for f in [KeyFormat::Pem, KeyFormat::OpenSsh, KeyFormat::Ppk] {
            assert_eq!(KeyFormat::parse(f.as_str()), Some(f));
            assert_eq!(f.to_string(), f.as_str());
        }
        assert_eq!(KeyType::parse("RSA"), None);
        assert_eq!(KeyType::parse("dsa"), None);
        assert_eq!(KeyType::parse(""), None);
        assert_eq!(KeyFormat::parse("PEM"), None);
        assert_eq!(KeyFormat::parse("der"), None);
    }

    // --- primitives --------------------------------------------------------

    #[test]
    fn hmac_sha1_matches_rfc2202() {
        assert_eq!(hex::encode(hmac_sha1(&[0x0b; 20], b"Hi There")), "b617318655057264e28bc0b6fb378c8ef146be00");
        assert_eq!(
            hex::encode(hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        // Key longer than the block size is hashed first.
        assert_eq!(
            hex::encode(hmac_sha1(&[0xaa; 80], b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112"
        );
    }

    #[test]
    fn mpint_encoding_follows_rfc4251() {
        let enc = |v: &[u8]| {
            let mut out = Vec::new();
            put_mpint(&mut out, &BigUint::from_bytes_be(v));
            out
        };
        assert_eq!(enc(&[0]), [0, 0, 0, 0]);
        assert_eq!(enc(&[0x7f]), [0, 0, 0, 1, 0x7f]);
        assert_eq!(enc(&[0x80]), [0, 0, 0, 2, 0, 0x80]);
        assert_eq!(enc(&[0, 0, 1, 2]), [0, 0, 0, 2, 1, 2]);
    }

    #[test]
    fn colon_hex_format() {
        assert_eq!(colon_hex(&[0x1f, 0x05, 0xff]), "1f:05:ff");
        assert_eq!(colon_hex(&[]), "");
    }

    #[test]
    fn debug_output_hides_private_key() {
        let key = generate(KeyType::Ed25519, KeyFormat::OpenSsh, "k").unwrap();
        let dbg = format!("{key:?}");
        assert!(!dbg.contains("PRIVATE KEY"));
        assert!(dbg.contains(&key.fingerprint));
    }

    // --- RSA creation ------------------------------------------------------

    #[test]
    fn rsa_pem_is_pkcs1_and_matches_openssl_and_ssh_keygen() {
        use rsa::pkcs1::DecodeRsaPrivateKey as _;

        let key = generate(KeyType::Rsa, KeyFormat::Pem, "my-key").unwrap();
        assert!(key.private_key_material.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        assert!(key.private_key_material.ends_with("-----END RSA PRIVATE KEY-----\n"));
        let parsed = rsa::RsaPrivateKey::from_pkcs1_pem(&key.private_key_material).unwrap();
        assert_eq!(parsed.n().bits(), CREATED_RSA_BITS);
        assert!(is_colon_hex(&key.fingerprint, 20), "{}", key.fingerprint);
        assert_eq!(key.fingerprint, colon_hex(&Sha1::digest(parsed.to_pkcs8_der().unwrap().as_bytes())));
        assert!(key.public_key_openssh.starts_with("ssh-rsa AAAA"));
        assert_eq!(key.public_key_openssh.split(' ').count(), 2);

        let dir = tempfile::tempdir().unwrap();
        let pem = write_private(dir.path(), "k.pem", &key.private_key_material);
        if let Some(openssl) = tool_or_skip("openssl") {
            assert_eq!(openssl_created_fingerprint(&openssl, &pem), key.fingerprint);
        }
        if let Some(ssh_keygen) = tool_or_skip("ssh-keygen") {
            let derived = run_text(&ssh_keygen, &["-y", "-f", s(&pem)]);
            assert_eq!(first_two_fields(&derived), key.public_key_openssh);
        }
    }

    #[test]
    fn rsa_openssh_loads_in_ssh_keygen_and_fingerprint_is_of_the_pkcs8_key() {
        let key = generate(KeyType::Rsa, KeyFormat::OpenSsh, "my-key").unwrap();
        assert!(key.private_key_material.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        let parsed = ssh_key::PrivateKey::from_openssh(&key.private_key_material).unwrap();
        assert_eq!(parsed.comment(), "my-key");
        assert_eq!(first_two_fields(&parsed.public_key().to_openssh().unwrap()), key.public_key_openssh);

        let Some(ssh_keygen) = tool_or_skip("ssh-keygen") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let path = write_private(dir.path(), "k", &key.private_key_material);
        let derived = run_text(&ssh_keygen, &["-y", "-f", s(&path)]);
        assert_eq!(first_two_fields(&derived), key.public_key_openssh);

        // Rewrite as PKCS#1 PEM so openssl can fingerprint the very same key.
        run(&ssh_keygen, &["-p", "-q", "-P", "", "-N", "", "-m", "PEM", "-f", s(&path)], b"");
        let rewritten = std::fs::read_to_string(&path).unwrap();
        assert!(rewritten.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        if let Some(openssl) = tool_or_skip("openssl") {
            assert_eq!(openssl_created_fingerprint(&openssl, &path), key.fingerprint);
        }
    }

    #[test]
    fn rsa_ppk_is_consistent_and_loads_in_puttygen() {
        use rsa::pkcs1::DecodeRsaPrivateKey as _;

        let key = generate(KeyType::Rsa, KeyFormat::Ppk, "my-key").unwrap();
        assert!(key
            .private_key_material
            .starts_with("PuTTY-User-Key-File-2: ssh-rsa\nEncryption: none\nComment: my-key\n"));
        let (comment, public, private) = parse_ppk(&key.private_key_material);
        assert_eq!(comment, "my-key");
        assert_eq!(openssh_line(SSH_RSA, &public), key.public_key_openssh);

        // Private blob is d, p, q, iqmp; they must describe the public key.
        let mut r = Reader::new(&private);
        let d = BigUint::from_bytes_be(r.mpint().unwrap());
        let p = BigUint::from_bytes_be(r.mpint().unwrap());
        let q = BigUint::from_bytes_be(r.mpint().unwrap());
        let iqmp = BigUint::from_bytes_be(r.mpint().unwrap());
        r.finish().unwrap();
        let mut pr = Reader::new(&public);
        pr.string().unwrap();
        let e = BigUint::from_bytes_be(pr.mpint().unwrap());
        let n = BigUint::from_bytes_be(pr.mpint().unwrap());
        assert_eq!(&p * &q, n);
        assert!(p > q, "primes must be in PuTTY's canonical order");
        assert_eq!((&iqmp * &q) % &p, BigUint::from(1u8));
        let rebuilt = rsa::RsaPrivateKey::from_components(n, e, d, vec![p, q]).unwrap();
        assert_eq!(key.fingerprint, colon_hex(&Sha1::digest(rebuilt.to_pkcs8_der().unwrap().as_bytes())));

        let Some(puttygen) = tool_or_skip("puttygen") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let ppk = write_private(dir.path(), "k.ppk", &key.private_key_material);
        let pub_out = dir.path().join("k.pub");
        run(&puttygen, &[s(&ppk), "-O", "public-openssh", "-o", s(&pub_out)], b"");
        let exported = std::fs::read_to_string(&pub_out).unwrap();
        assert_eq!(first_two_fields(&exported), key.public_key_openssh);

        let pem_out = dir.path().join("k.pem");
        run(&puttygen, &[s(&ppk), "-O", "private-openssh", "-o", s(&pem_out)], b"");
        let pem = std::fs::read_to_string(&pem_out).unwrap();
        let from_putty = rsa::RsaPrivateKey::from_pkcs1_pem(&pem).unwrap();
        assert_eq!(key.fingerprint, colon_hex(&Sha1::digest(from_putty.to_pkcs8_der().unwrap().as_bytes())));
        if let Some(openssl) = tool_or_skip("openssl") {
            assert_eq!(openssl_created_fingerprint(&openssl, &pem_out), key.fingerprint);
        }
    }

    // --- Ed25519 creation --------------------------------------------------

    #[test]
    fn ed25519_pem_and_openssh_are_openssh_format_and_match_ssh_keygen() {
        for format in [KeyFormat::Pem, KeyFormat::OpenSsh] {
            let key = generate(KeyType::Ed25519, format, "ed-key").unwrap();
            assert!(key.private_key_material.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"), "{format}");
            assert!(key.public_key_openssh.starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"));
            assert_eq!(key.public_key_openssh.split(' ').count(), 2);
            assert_eq!(key.fingerprint.len(), 44);
            assert!(key.fingerprint.ends_with('='));
            assert!(!key.fingerprint.starts_with("SHA256:"));

            let parsed = ssh_key::PrivateKey::from_openssh(&key.private_key_material).unwrap();
            assert_eq!(parsed.comment(), "ed-key");
            let fp = parsed.public_key().fingerprint(ssh_key::HashAlg::Sha256);
            assert_eq!(format!("{}=", fp.to_string().trim_start_matches("SHA256:")), key.fingerprint);

            let Some(ssh_keygen) = tool_or_skip("ssh-keygen") else {
                continue;
            };
            let dir = tempfile::tempdir().unwrap();
            let path = write_private(dir.path(), "k", &key.private_key_material);
            assert_eq!(ssh_keygen_sha256(&ssh_keygen, &path), key.fingerprint);
            let derived = run_text(&ssh_keygen, &["-y", "-f", s(&path)]);
            assert_eq!(first_two_fields(&derived), key.public_key_openssh);
        }
    }

    #[test]
    fn ed25519_ppk_is_consistent_and_loads_in_puttygen() {
        let key = generate(KeyType::Ed25519, KeyFormat::Ppk, "ed-key").unwrap();
        assert!(key.private_key_material.starts_with("PuTTY-User-Key-File-2: ssh-ed25519\n"));
        let (_, public, private) = parse_ppk(&key.private_key_material);
        assert_eq!(openssh_line(SSH_ED25519, &public), key.public_key_openssh);
        assert_eq!(sha256_fingerprint(&public), key.fingerprint);
        let mut r = Reader::new(&private);
        let seed: [u8; 32] = r.string().unwrap().try_into().unwrap();
        r.finish().unwrap();
        let derived = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        assert_eq!(ed25519_public_blob(derived.as_bytes()), public);

        let Some(puttygen) = tool_or_skip("puttygen") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let ppk = write_private(dir.path(), "k.ppk", &key.private_key_material);
        let pub_out = dir.path().join("k.pub");
        run(&puttygen, &[s(&ppk), "-O", "public-openssh", "-o", s(&pub_out)], b"");
        let exported = std::fs::read_to_string(&pub_out).unwrap();
        assert_eq!(first_two_fields(&exported), key.public_key_openssh);
        let openssh_out = dir.path().join("k.openssh");
        run(&puttygen, &[s(&ppk), "-O", "private-openssh-new", "-o", s(&openssh_out)], b"");
        if let Some(ssh_keygen) = tool_or_skip("ssh-keygen") {
            assert_eq!(ssh_keygen_sha256(&ssh_keygen, &openssh_out), key.fingerprint);
        }
    }

    #[test]
    fn control_characters_in_comment_do_not_break_files() {
        let key = generate(KeyType::Ed25519, KeyFormat::Ppk, "a\nPrivate-MAC: x\r").unwrap();
        let (comment, _, _) = parse_ppk(&key.private_key_material);
        assert_eq!(comment, "a Private-MAC: x ");
    }

    #[test]
    fn generated_keys_are_distinct() {
        let a = generate(KeyType::Ed25519, KeyFormat::Pem, "x").unwrap();
        let b = generate(KeyType::Ed25519, KeyFormat::Pem, "x").unwrap();
        assert_ne!(a.public_key_openssh, b.public_key_openssh);
        assert_ne!(a.fingerprint, b.fingerprint);
    }

    // --- import ------------------------------------------------------------

    #[test]
    fn import_ssh_keygen_rsa_matches_openssl_md5() {
        let (Some(ssh_keygen), Some(openssl)) = (tool_or_skip("ssh-keygen"), tool_or_skip("openssl")) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        for bits in ["1024", "2048", "4096"] {
            let (pub_path, line) = ssh_keygen_pair(&ssh_keygen, dir.path(), &["-t", "rsa", "-b", bits]);
            let imported = import(line.as_bytes()).unwrap();
            assert_eq!(imported.key_type, KeyType::Rsa);
            assert_eq!(imported.public_key_openssh, first_two_fields(&line));
            assert!(is_colon_hex(&imported.fingerprint, 16), "{}", imported.fingerprint);
            assert_eq!(
                imported.fingerprint,
                openssl_imported_fingerprint(&ssh_keygen, &openssl, &pub_path),
                "{bits}-bit"
            );
        }
    }

    #[test]
    fn import_ssh_keygen_ed25519_matches_sha256() {
        let Some(ssh_keygen) = tool_or_skip("ssh-keygen") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let (pub_path, line) = ssh_keygen_pair(&ssh_keygen, dir.path(), &["-t", "ed25519"]);
        let imported = import(line.as_bytes()).unwrap();
        assert_eq!(imported.key_type, KeyType::Ed25519);
        assert_eq!(imported.public_key_openssh, first_two_fields(&line));
        assert_eq!(imported.fingerprint, ssh_keygen_sha256(&ssh_keygen, &pub_path));
    }

    #[test]
    fn import_tolerates_comments_and_surrounding_whitespace() {
        let key = generate(KeyType::Ed25519, KeyFormat::OpenSsh, "x").unwrap();
        let base = import(key.public_key_openssh.as_bytes()).unwrap();
        for variant in [
            format!("{}\n", key.public_key_openssh),
            format!("{}\r\n", key.public_key_openssh),
            format!("  {} user@host with spaces\n", key.public_key_openssh),
            key.public_key_openssh.replace(' ', "\t"),
        ] {
            assert_eq!(import(variant.as_bytes()).unwrap(), base, "{variant:?}");
        }
    }

    #[test]
    fn created_keys_reimport_with_ec2_fingerprints() {
        let ed = generate(KeyType::Ed25519, KeyFormat::Pem, "x").unwrap();
        let imported = import(ed.public_key_openssh.as_bytes()).unwrap();
        assert_eq!(imported.fingerprint, ed.fingerprint);
        assert_eq!(imported.public_key_openssh, ed.public_key_openssh);

        // EC2 fingerprints a re-imported RSA key by MD5 of its public half, so
        // it deliberately differs from the created key's SHA-1.
        let rsa = generate(KeyType::Rsa, KeyFormat::Pem, "x").unwrap();
        let imported = import(rsa.public_key_openssh.as_bytes()).unwrap();
        assert_eq!(imported.key_type, KeyType::Rsa);
        assert_eq!(imported.public_key_openssh, rsa.public_key_openssh);
        assert!(is_colon_hex(&imported.fingerprint, 16));
        assert_ne!(imported.fingerprint, rsa.fingerprint);

        use rsa::pkcs1::DecodeRsaPrivateKey as _;
        let private = rsa::RsaPrivateKey::from_pkcs1_pem(&rsa.private_key_material).unwrap();
        let spki = private.to_public_key().to_public_key_der().unwrap();
        assert_eq!(imported.fingerprint, colon_hex(&Md5::digest(spki.as_bytes())));

        let Some(ssh_keygen) = tool_or_skip("ssh-keygen") else {
            return;
        };
        // Stored lines must be usable as authorized_keys entries.
        let dir = tempfile::tempdir().unwrap();
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, format!("{}\n{}\n", ed.public_key_openssh, rsa.public_key_openssh)).unwrap();
        let listed = run_text(&ssh_keygen, &["-l", "-f", s(&authorized)]);
        assert_eq!(listed.lines().count(), 2, "{listed}");
        if let Some(openssl) = tool_or_skip("openssl") {
            let pub_path = dir.path().join("rsa.pub");
            std::fs::write(&pub_path, format!("{}\n", rsa.public_key_openssh)).unwrap();
            assert_eq!(openssl_imported_fingerprint(&ssh_keygen, &openssl, &pub_path), imported.fingerprint);
        }
    }

    #[test]
    fn import_accepts_rfc4716_and_der_rsa_as_ec2_does() {
        use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPublicKey as _};
        let created = generate(KeyType::Rsa, KeyFormat::Pem, "x").unwrap();
        let line = import(created.public_key_openssh.as_bytes()).unwrap();
        let public = rsa::RsaPrivateKey::from_pkcs1_pem(&created.private_key_material).unwrap().to_public_key();

        let blob = STANDARD.decode(created.public_key_openssh.split(' ').nth(1).unwrap()).unwrap();
        let body: Vec<String> =
            STANDARD.encode(&blob).as_bytes().chunks(70).map(|c| String::from_utf8(c.to_vec()).unwrap()).collect();
        let rfc = format!(
            "{RFC4716_BEGIN}\r\nComment: \"a long \\\ncomment\"\r\nx-private: 1\n{}\n{RFC4716_END}\n",
            body.join("\n")
        );
        assert_eq!(import(rfc.as_bytes()).unwrap(), line);

        let spki = public.to_public_key_der().unwrap();
        let pkcs1 = public.to_pkcs1_der().unwrap();
        for der in [spki.as_bytes(), pkcs1.as_bytes()] {
            assert_eq!(import(STANDARD.encode(der).as_bytes()).unwrap(), line);
            assert_eq!(import(der).unwrap(), line);
        }

        // RFC 4716 is RSA-only on EC2, and a block must be complete.
        let ed = generate(KeyType::Ed25519, KeyFormat::Pem, "x").unwrap();
        let ed_blob = ed.public_key_openssh.split(' ').nth(1).unwrap();
        assert_format_err(format!("{RFC4716_BEGIN}\n{ed_blob}\n{RFC4716_END}\n").as_bytes());
        assert_format_err(format!("{RFC4716_BEGIN}\n{}\n", body.join("\n")).as_bytes());
        assert_format_err(format!("{RFC4716_BEGIN}\n{}\n{RFC4716_END}\nmore", body.join("\n")).as_bytes());
        assert_format_err(STANDARD.encode([0x30, 0x03, 0x02, 0x01, 0x01]).as_bytes());
    }

    #[test]
    fn import_rejects_non_public_key_material() {
        let rsa_pem = generate(KeyType::Rsa, KeyFormat::Pem, "x").unwrap();
        let ed_openssh = generate(KeyType::Ed25519, KeyFormat::OpenSsh, "x").unwrap();
        let ed_ppk = generate(KeyType::Ed25519, KeyFormat::Ppk, "x").unwrap();
        let msg = assert_format_err(rsa_pem.private_key_material.as_bytes());
        assert!(msg.contains("private key"), "{msg}");
        let msg = assert_format_err(ed_openssh.private_key_material.as_bytes());
        assert!(msg.contains("private key"), "{msg}");
        assert_format_err(ed_ppk.private_key_material.as_bytes());

        use rsa::pkcs1::DecodeRsaPrivateKey as _;
        let spki_pem = rsa::RsaPrivateKey::from_pkcs1_pem(&rsa_pem.private_key_material)
            .unwrap()
            .to_public_key()
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap();
        assert_format_err(spki_pem.as_bytes());

        for garbage in [
            &b""[..],
            b"   \n\t ",
            b"hello world",
            b"ssh-rsa",
            b"ssh-rsa    ",
            b"ssh-rsa !!!notbase64!!!",
            b"ssh-rsa AAAA",
            b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
            b"\xff\xfe\x00binary",
            b"AAAAB3NzaC1yc2EAAAADAQABAAABAQ",
            b"ssh-ed25519\0AAAA",
        ] {
            assert_format_err(garbage);
        }

        // Several keys at once are ambiguous.
        let two = format!("{0}\n{0}\n", ed_openssh.public_key_openssh);
        assert_format_err(two.as_bytes());
    }

    #[test]
    fn import_rejects_other_algorithms() {
        let mut dss = Vec::new();
        for part in [&b"ssh-dss"[..], &[1; 129], &[2; 21], &[3; 128], &[4; 128]] {
            put_string(&mut dss, part);
        }
        let msg = assert_format_err(openssh_line("ssh-dss", &dss).as_bytes());
        assert!(msg.contains("DSA"), "{msg}");

        let mut ecdsa = Vec::new();
        put_string(&mut ecdsa, b"ecdsa-sha2-nistp256");
        put_string(&mut ecdsa, b"nistp256");
        let mut point = vec![4u8];
        point.extend_from_slice(&[7; 64]);
        put_string(&mut ecdsa, &point);
        let msg = assert_format_err(openssh_line("ecdsa-sha2-nistp256", &ecdsa).as_bytes());
        assert!(msg.contains("not supported"), "{msg}");
        assert_format_err(b"sk-ssh-ed25519@openssh.com AAAA");
        assert_format_err(b"ssh-rsa-cert-v01@openssh.com AAAA");

        if let Some(ssh_keygen) = tool_or_skip("ssh-keygen") {
            let dir = tempfile::tempdir().unwrap();
            for args in [&["-t", "ecdsa"][..], &["-t", "ecdsa", "-b", "521"]] {
                let (_, line) = ssh_keygen_pair(&ssh_keygen, dir.path(), args);
                assert_format_err(line.as_bytes());
            }
        }
    }

    #[test]
    fn import_rejects_malformed_blobs() {
        let ed = generate(KeyType::Ed25519, KeyFormat::OpenSsh, "x").unwrap();
        let rsa = generate(KeyType::Rsa, KeyFormat::OpenSsh, "x").unwrap();
        let blob_of = |line: &str| STANDARD.decode(line.split(' ').nth(1).unwrap()).unwrap();
        let ed_blob = blob_of(&ed.public_key_openssh);
        let rsa_blob = blob_of(&rsa.public_key_openssh);

        // Truncated at every length.
        for (name, blob) in [("ssh-ed25519", &ed_blob), ("ssh-rsa", &rsa_blob)] {
            for len in 0..blob.len() {
                assert_format_err(openssh_line(name, &blob[..len]).as_bytes());
            }
            let mut extended = blob.clone();
            extended.push(0);
            let msg = assert_format_err(openssh_line(name, &extended).as_bytes());
            assert!(msg.contains("trailing"), "{msg}");
        }

        // Label and blob disagree.
        let msg = assert_format_err(openssh_line("ssh-rsa", &ed_blob).as_bytes());
        assert!(msg.contains("does not match"), "{msg}");
        assert_format_err(openssh_line("ssh-ed25519", &rsa_blob).as_bytes());

        // Stray padding or characters glued to the base64 field.
        for suffix in ["=", "==", "A", "*"] {
            assert_format_err(format!("{}{suffix}", ed.public_key_openssh).as_bytes());
        }

        // Wrong-length and off-curve Ed25519 keys.
        for point in [&[9u8; 31][..], &[9u8; 33]] {
            let mut blob = Vec::new();
            put_string(&mut blob, b"ssh-ed25519");
            put_string(&mut blob, point);
            assert_format_err(openssh_line("ssh-ed25519", &blob).as_bytes());
        }
        let off_curve = (0u8..=255)
            .map(|b| [b; 32])
            .find(|p| ed25519_dalek::VerifyingKey::from_bytes(p).is_err())
            .expect("some non-point");
        let mut blob = Vec::new();
        put_string(&mut blob, b"ssh-ed25519");
        put_string(&mut blob, &off_curve);
        assert_format_err(openssh_line("ssh-ed25519", &blob).as_bytes());

        // RSA size and exponent limits.
        let odd_modulus = |bits: usize| {
            let mut n = vec![0xffu8; bits / 8];
            n[0] = 0xc5;
            n
        };
        for bits in [512, 1016, 16392, 20000] {
            let blob = rsa_blob_with(&[1, 0, 1], &odd_modulus(bits));
            let msg = assert_format_err(openssh_line("ssh-rsa", &blob).as_bytes());
            assert!(msg.contains("bits"), "{bits}: {msg}");
        }
        for ok_bits in [1024, 16384] {
            let blob = rsa_blob_with(&[1, 0, 1], &odd_modulus(ok_bits));
            let imported = import(openssh_line("ssh-rsa", &blob).as_bytes()).unwrap();
            assert_eq!(imported.key_type, KeyType::Rsa);
        }
        let mut even = odd_modulus(2048);
        *even.last_mut().unwrap() = 0xfe;
        assert_format_err(openssh_line("ssh-rsa", &rsa_blob_with(&[1, 0, 1], &even)).as_bytes());
        for e in [&[][..], &[1], &[2], &[1, 0, 0], &[1; 9]] {
            let blob = rsa_blob_with(e, &odd_modulus(2048));
            let msg = assert_format_err(openssh_line("ssh-rsa", &blob).as_bytes());
            assert!(msg.contains("exponent"), "{e:?}: {msg}");
        }

        // A negative mpint.
        let mut blob = Vec::new();
        put_string(&mut blob, b"ssh-rsa");
        put_string(&mut blob, &[1, 0, 1]);
        put_string(&mut blob, &odd_modulus(2048));
        let msg = assert_format_err(openssh_line("ssh-rsa", &blob).as_bytes());
        assert!(msg.contains("negative"), "{msg}");

        // A length prefix that claims more than the blob holds.
        let mut blob = Vec::new();
        blob.extend_from_slice(&u32::MAX.to_be_bytes());
        blob.extend_from_slice(b"ssh-rsa");
        assert_format_err(openssh_line("ssh-rsa", &blob).as_bytes());
    }

    proptest! {
        #[test]
        fn import_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = import(&bytes);
        }

        #[test]
        fn import_never_panics_on_random_blobs(
            name in prop_oneof![
                Just("ssh-rsa".to_string()),
                Just("ssh-ed25519".to_string()),
                Just("ssh-dss".to_string()),
                "[a-z0-9@.-]{1,20}",
            ],
            blob in proptest::collection::vec(any::<u8>(), 0..600),
            comment in "[ -~]{0,40}",
        ) {
            let line = format!("{} {}", openssh_line(&name, &blob), comment);
            if let Err(e) = import(line.as_bytes()) {
                prop_assert!(matches!(e, KeyError::Format(_)), "{e:?}");
            }
        }

        #[test]
        fn import_never_panics_on_mutated_valid_keys(
            index in any::<prop::sample::Index>(),
            value in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut blob = Vec::new();
            put_string(&mut blob, b"ssh-ed25519");
            put_string(&mut blob, &[0x3b; 32]);
            let rsa = rsa_blob_with(&[1, 0, 1], &{
                let mut n = vec![0xabu8; 256];
                n[255] = 0x01;
                n
            });
            for (name, mut blob) in [("ssh-ed25519", blob), ("ssh-rsa", rsa)] {
                let i = index.index(blob.len());
                blob[i] = value;
                let keep = cut.index(blob.len() + 1);
                blob.truncate(keep);
                if let Err(e) = import(openssh_line(name, &blob).as_bytes()) {
                    prop_assert!(matches!(e, KeyError::Format(_)), "{e:?}");
                }
            }
        }
    }
}
