//! Tests of the parent module.
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use proptest::prelude::*;

use super::*;

// --- helpers -----------------------------------------------------------

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

#[path = "../../../../../tests/support/host_tools.rs"]
mod host_tools;

fn tool_or_skip(name: &str) -> Option<PathBuf> {
    let found = find_tool(name);
    if found.is_none() {
        host_tools::cannot_run(&format!("the external cross-check needs {name} on PATH"));
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
    let der = run(openssl, &["pkcs8", "-in", s(pem), "-inform", "PEM", "-outform", "DER", "-topk8", "-nocrypt"], b"");
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
        assert_eq!(imported.fingerprint, openssl_imported_fingerprint(&ssh_keygen, &openssl, &pub_path), "{bits}-bit");
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
