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
use hmac::{Hmac, Mac as _};
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

/// HMAC-SHA-1, the MAC of version 2 PuTTY key files.
fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail.
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests;
