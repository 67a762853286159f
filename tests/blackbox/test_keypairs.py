"""Key pairs: CreateKeyPair, ImportKeyPair, DescribeKeyPairs, DeleteKeyPair, through boto3 and the AWS CLI.

Cryptographic claims are checked against the real tools (ssh-keygen, openssl), not against Kiln.
"""

import base64
import pathlib
import re
import subprocess

import pytest
from botocore.exceptions import ClientError

from conftest import error_code


def run(*args, stdin=None):
    p = subprocess.run(list(args), input=stdin, capture_output=True, check=True)
    return p.stdout


def write_private(tmp_path, name, material):
    path = tmp_path / name
    path.write_text(material if material.endswith("\n") else material + "\n")
    path.chmod(0o600)
    return path


def ssh_keypair(tmp_path, key_type, name=None, bits=None):
    """Generates a key pair with ssh-keygen; returns (private path, public key line)."""
    path = tmp_path / (name or f"id_{key_type}")
    args = ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", "test@example", "-f", str(path)]
    if bits:
        args += ["-b", str(bits)]
    run(*args)
    return path, pathlib.Path(f"{path}.pub").read_text().strip()


def two_fields(line):
    return " ".join(line.split()[:2])


def openssl_digest(out):
    # `openssl sha1 -c` prints "SHA1(stdin)= aa:bb:..."
    return out.decode().strip().split()[-1]


def created_rsa_fingerprint(pem_path):
    der = run("openssl", "pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in", str(pem_path))
    return openssl_digest(run("openssl", "sha1", "-c", stdin=der))


def imported_rsa_fingerprint(pub_path):
    spki_pem = run("ssh-keygen", "-e", "-m", "PKCS8", "-f", str(pub_path))
    der = run("openssl", "pkey", "-pubin", "-outform", "DER", stdin=spki_pem)
    return openssl_digest(run("openssl", "md5", "-c", stdin=der))


def ssh_keygen_sha256(path):
    # "256 SHA256:abc... comment (ED25519)"
    out = run("ssh-keygen", "-l", "-E", "sha256", "-f", str(path)).decode()
    return out.split()[1].removeprefix("SHA256:")


COLON_HEX_20 = re.compile(r"^([0-9a-f]{2}:){19}[0-9a-f]{2}$")
COLON_HEX_16 = re.compile(r"^([0-9a-f]{2}:){15}[0-9a-f]{2}$")


# --- CreateKeyPair -------------------------------------------------------------------------


def test_create_rsa_default_is_pkcs1_pem_matching_public_key_and_fingerprint(ec2, unique, tmp_path):
    c = ec2()
    name = unique("rsa")
    created = c.create_key_pair(KeyName=name)
    material = created["KeyMaterial"]
    assert material.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert material.strip().endswith("-----END RSA PRIVATE KEY-----")
    assert created["KeyName"] == name
    assert created["KeyPairId"].startswith("key-")

    pem = write_private(tmp_path, "k.pem", material)
    derived = run("ssh-keygen", "-y", "-f", str(pem)).decode().strip()
    described = c.describe_key_pairs(KeyNames=[name], IncludePublicKey=True)["KeyPairs"]
    assert len(described) == 1
    kp = described[0]
    assert two_fields(kp["PublicKey"]) == two_fields(derived)
    assert kp["KeyType"] == "rsa"
    assert kp["KeyPairId"] == created["KeyPairId"]

    fp = created_rsa_fingerprint(pem)
    assert COLON_HEX_20.match(created["KeyFingerprint"])
    assert created["KeyFingerprint"] == fp
    assert kp["KeyFingerprint"] == fp
    # 2048-bit, as EC2 creates
    assert run("ssh-keygen", "-l", "-f", str(pem)).decode().split()[0] == "2048"


def test_create_ed25519_is_openssh_with_sha256_fingerprint(ec2, unique, tmp_path):
    c = ec2()
    name = unique("ed")
    created = c.create_key_pair(KeyName=name, KeyType="ed25519")
    material = created["KeyMaterial"]
    assert material.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    key = write_private(tmp_path, "ed", material)
    derived = run("ssh-keygen", "-y", "-f", str(key)).decode().strip()
    assert derived.startswith("ssh-ed25519 ")

    fp = created["KeyFingerprint"]
    # EC2 gives ed25519 fingerprints as padded base64 SHA-256 of the public key blob.
    assert fp.endswith("=") and len(base64.b64decode(fp)) == 32
    assert fp.rstrip("=") == ssh_keygen_sha256(key)

    kp = c.describe_key_pairs(KeyPairIds=[created["KeyPairId"]], IncludePublicKey=True)["KeyPairs"][0]
    assert kp["KeyType"] == "ed25519"
    assert kp["KeyFingerprint"] == fp
    assert two_fields(kp["PublicKey"]) == two_fields(derived)


def test_create_openssh_format_rsa(ec2, unique, tmp_path):
    created = ec2().create_key_pair(KeyName=unique("ossh"), KeyFormat="openssh")
    assert created["KeyMaterial"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    key = write_private(tmp_path, "o", created["KeyMaterial"])
    assert run("ssh-keygen", "-y", "-f", str(key)).decode().startswith("ssh-rsa ")


def test_create_ppk_format(ec2, unique, tmp_path):
    created = ec2().create_key_pair(KeyName=unique("ppk"), KeyType="ed25519", KeyFormat="ppk")
    material = created["KeyMaterial"]
    assert material.startswith("PuTTY-User-Key-File-")
    assert "Encryption: none" in material
    # puttygen can convert it to an OpenSSH public key with the same fingerprint.
    ppk = write_private(tmp_path, "k.ppk", material)
    pub = run("puttygen", str(ppk), "-O", "public-openssh").decode().strip()
    pub_path = tmp_path / "k.pub"
    pub_path.write_text(pub + "\n")
    assert created["KeyFingerprint"].rstrip("=") == ssh_keygen_sha256(pub_path)


def test_create_rejects_bad_type_and_format(ec2, unique):
    c = ec2()
    for kwargs in ({"KeyType": "dsa"}, {"KeyFormat": "der"}):
        with pytest.raises(ClientError) as e:
            c.create_key_pair(KeyName=unique("bad"), **kwargs)
        assert error_code(e) == "InvalidParameterValue"


def test_duplicate_name_is_refused_for_create_and_import(ec2, unique, tmp_path):
    c = ec2()
    name = unique("dup")
    c.create_key_pair(KeyName=name, KeyType="ed25519")
    with pytest.raises(ClientError) as e:
        c.create_key_pair(KeyName=name, KeyType="ed25519")
    assert error_code(e) == "InvalidKeyPair.Duplicate"
    _, pub = ssh_keypair(tmp_path, "ed25519")
    with pytest.raises(ClientError) as e:
        c.import_key_pair(KeyName=name, PublicKeyMaterial=pub.encode())
    assert error_code(e) == "InvalidKeyPair.Duplicate"
    assert len(c.describe_key_pairs(KeyNames=[name])["KeyPairs"]) == 1


def test_private_key_is_never_returned_again(ec2, unique):
    c = ec2()
    name = unique("once")
    created = c.create_key_pair(KeyName=name, KeyType="ed25519")
    secret_line = created["KeyMaterial"].splitlines()[1]
    for include in (False, True):
        resp = c.describe_key_pairs(KeyNames=[name], IncludePublicKey=include)
        kp = resp["KeyPairs"][0]
        assert "KeyMaterial" not in kp
        assert secret_line not in repr(resp)
        assert ("PublicKey" in kp) == include
    # CreateTime is present and recent.
    assert kp["CreateTime"].year >= 2024


# --- ImportKeyPair -------------------------------------------------------------------------


def test_import_rsa_fingerprint_is_md5_of_spki(ec2, unique, tmp_path):
    c = ec2()
    priv, pub = ssh_keypair(tmp_path, "rsa", bits=2048)
    name = unique("imp-rsa")
    imported = c.import_key_pair(KeyName=name, PublicKeyMaterial=pub.encode())
    expected = imported_rsa_fingerprint(pathlib.Path(f"{priv}.pub"))
    assert COLON_HEX_16.match(imported["KeyFingerprint"])
    assert imported["KeyFingerprint"] == expected
    assert imported["KeyName"] == name
    kp = c.describe_key_pairs(KeyNames=[name], IncludePublicKey=True)["KeyPairs"][0]
    assert kp["KeyType"] == "rsa"
    assert kp["KeyFingerprint"] == expected
    assert two_fields(kp["PublicKey"]) == two_fields(pub)
    assert "KeyMaterial" not in imported


def test_import_ed25519_fingerprint_is_sha256(ec2, unique, tmp_path):
    c = ec2()
    priv, pub = ssh_keypair(tmp_path, "ed25519")
    imported = c.import_key_pair(KeyName=unique("imp-ed"), PublicKeyMaterial=pub.encode())
    assert imported["KeyFingerprint"].rstrip("=") == ssh_keygen_sha256(priv)
    kp = c.describe_key_pairs(KeyPairIds=[imported["KeyPairId"]], IncludePublicKey=True)["KeyPairs"][0]
    assert kp["KeyType"] == "ed25519"
    assert two_fields(kp["PublicKey"]) == two_fields(pub)


def test_import_rsa_in_rfc4716_and_base64_der(ec2, unique, tmp_path):
    """EC2 also takes RSA keys as RFC 4716 blocks (PuTTYgen's "Save public key") and base64 DER."""
    c = ec2()
    priv, pub = ssh_keypair(tmp_path, "rsa", bits=2048)
    pub_path = pathlib.Path(f"{priv}.pub")
    expected = imported_rsa_fingerprint(pub_path)
    rfc4716 = run("ssh-keygen", "-e", "-f", str(pub_path))
    assert rfc4716.startswith(b"---- BEGIN SSH2 PUBLIC KEY ----")
    spki_pem = run("ssh-keygen", "-e", "-m", "PKCS8", "-f", str(pub_path))
    der_b64 = base64.b64encode(run("openssl", "pkey", "-pubin", "-outform", "DER", stdin=spki_pem))
    for material in (rfc4716, der_b64):
        name = unique("fmt")
        imported = c.import_key_pair(KeyName=name, PublicKeyMaterial=material)
        assert imported["KeyFingerprint"] == expected
        kp = c.describe_key_pairs(KeyNames=[name], IncludePublicKey=True)["KeyPairs"][0]
        assert two_fields(kp["PublicKey"]) == two_fields(pub)
        assert kp["KeyType"] == "rsa"


def test_created_key_reimported_gets_the_import_fingerprint(ec2, unique, tmp_path):
    """EC2 fingerprints created and imported RSA keys differently."""
    c = ec2()
    created = c.create_key_pair(KeyName=unique("orig"))
    pem = write_private(tmp_path, "orig.pem", created["KeyMaterial"])
    pub = run("ssh-keygen", "-y", "-f", str(pem)).decode().strip()
    pub_path = tmp_path / "orig.pub"
    pub_path.write_text(pub + "\n")
    imported = c.import_key_pair(KeyName=unique("copy"), PublicKeyMaterial=pub.encode())
    assert imported["KeyFingerprint"] == imported_rsa_fingerprint(pub_path)
    assert imported["KeyFingerprint"] != created["KeyFingerprint"]


def test_import_refuses_bad_material(ec2, unique, tmp_path):
    c = ec2()
    _, ecdsa = ssh_keypair(tmp_path, "ecdsa")
    ed_priv, _ = ssh_keypair(tmp_path, "ed25519", name="priv_ed")
    rsa_pem = run("openssl", "genrsa", "2048")
    bad = {
        "garbage": b"this is not a key",
        "ecdsa": ecdsa.encode(),
        "openssh private key": ed_priv.read_bytes(),
        "pem private key": rsa_pem,
        "truncated": b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI",
        "type mismatch": b"ssh-rsa " + ecdsa.split()[1].encode(),
    }
    for what, material in bad.items():
        name = unique("bad")
        with pytest.raises(ClientError) as e:
            c.import_key_pair(KeyName=name, PublicKeyMaterial=material)
        assert error_code(e) == "InvalidKeyPair.Format", what
        with pytest.raises(ClientError) as e:
            c.describe_key_pairs(KeyNames=[name])
        assert error_code(e) == "InvalidKeyPair.NotFound", what


def ssh_rsa_line(e, n):
    """An `ssh-rsa` public key line built from integers (RFC 4253 string/mpint encoding)."""
    def string(b):
        return len(b).to_bytes(4, "big") + b

    def mpint(i):
        b = i.to_bytes((i.bit_length() + 8) // 8, "big")  # leading zero byte keeps it positive
        return string(b)

    blob = string(b"ssh-rsa") + mpint(e) + mpint(n)
    return "ssh-rsa " + base64.b64encode(blob).decode()


def test_import_refuses_short_rsa(ec2, unique):
    # EC2 accepts RSA keys of 1024 bits and more; a 512-bit key is refused. ssh-keygen will not
    # make one, so take the modulus from openssl.
    pem = run("openssl", "genrsa", "512")
    modulus = run("openssl", "rsa", "-noout", "-modulus", stdin=pem).decode().strip().split("=")[1]
    line = ssh_rsa_line(65537, int(modulus, 16))
    c = ec2()
    with pytest.raises(ClientError) as e:
        c.import_key_pair(KeyName=unique("short"), PublicKeyMaterial=line.encode())
    assert error_code(e) in ("InvalidKeyPair.Format", "InvalidParameterValue")
    # The same construction with a 2048-bit modulus is accepted, so the refusal is about size.
    pem = run("openssl", "genrsa", "2048")
    modulus = run("openssl", "rsa", "-noout", "-modulus", stdin=pem).decode().strip().split("=")[1]
    c.import_key_pair(KeyName=unique("long"), PublicKeyMaterial=ssh_rsa_line(65537, int(modulus, 16)).encode())


# --- DescribeKeyPairs ----------------------------------------------------------------------


@pytest.fixture
def family(ec2, unique, tmp_path):
    """Four imported ed25519 keys sharing a random stem, with tags."""
    c = ec2()
    stem = unique("fam")
    out = {}
    for i, suffix in enumerate(["web-1", "web-2", "web-10", "db-1"]):
        _, pub = ssh_keypair(tmp_path, "ed25519", name=f"k{i}")
        tags = [{"Key": "Name", "Value": f"{stem}-{suffix}"}, {"Key": "role", "Value": suffix.split("-")[0]}]
        if suffix == "db-1":
            tags.append({"Key": f"{stem}-only-db", "Value": "yes"})
        r = c.import_key_pair(KeyName=f"{stem}-{suffix}", PublicKeyMaterial=pub.encode(),
                              TagSpecifications=[{"ResourceType": "key-pair", "Tags": tags}])
        out[suffix] = r
    return c, stem, out


def names_for(c, **kwargs):
    return sorted(k["KeyName"] for k in c.describe_key_pairs(**kwargs)["KeyPairs"])


def test_describe_by_names_and_ids(family):
    c, stem, keys = family
    assert names_for(c, KeyNames=[f"{stem}-web-1", f"{stem}-db-1"]) == [f"{stem}-db-1", f"{stem}-web-1"]
    ids = [keys["web-2"]["KeyPairId"], keys["web-10"]["KeyPairId"]]
    assert names_for(c, KeyPairIds=ids) == [f"{stem}-web-10", f"{stem}-web-2"]


def test_describe_unknown_name_or_id_is_not_found(family):
    c, stem, _ = family
    with pytest.raises(ClientError) as e:
        c.describe_key_pairs(KeyNames=[f"{stem}-web-1", f"{stem}-nope"])
    assert error_code(e) == "InvalidKeyPair.NotFound"
    assert f"{stem}-nope" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        c.describe_key_pairs(KeyPairIds=["key-0123456789abcdef0"])
    assert error_code(e) == "InvalidKeyPair.NotFound"


def test_describe_filters(family):
    c, stem, keys = family
    f = lambda name, *values: {"Filters": [{"Name": name, "Values": list(values)}]}  # noqa: E731
    assert names_for(c, **f("key-name", f"{stem}-web-*")) == sorted(f"{stem}-{s}" for s in ["web-1", "web-2", "web-10"])
    assert names_for(c, **f("key-name", f"{stem}-web-?")) == [f"{stem}-web-1", f"{stem}-web-2"]
    assert names_for(c, **f("key-name", f"{stem}-web-?", f"{stem}-db-*")) == [f"{stem}-db-1", f"{stem}-web-1", f"{stem}-web-2"]
    assert names_for(c, **f("fingerprint", keys["web-10"]["KeyFingerprint"])) == [f"{stem}-web-10"]
    assert names_for(c, **f("key-pair-id", keys["db-1"]["KeyPairId"])) == [f"{stem}-db-1"]
    assert names_for(c, **f("tag:Name", f"{stem}-web-2")) == [f"{stem}-web-2"]
    assert names_for(c, **f("tag-key", f"{stem}-only-db")) == [f"{stem}-db-1"]
    assert names_for(c, **f("key-type", "ed25519", "rsa"), KeyNames=[f"{stem}-db-1"]) == [f"{stem}-db-1"]
    assert names_for(c, **f("key-type", "rsa"), KeyNames=[f"{stem}-db-1"]) == []
    # tag-value narrows to this family by combining (AND) with a key-name filter.
    both = {"Filters": [{"Name": "tag-value", "Values": ["db"]}, {"Name": "key-name", "Values": [f"{stem}-*"]}]}
    assert names_for(c, **both) == [f"{stem}-db-1"]
    assert names_for(c, **f("key-name", f"{stem}-nothing-*")) == []
    # Names and filters combine.
    assert names_for(c, KeyNames=[f"{stem}-web-1", f"{stem}-db-1"], **f("tag:role", "web")) == [f"{stem}-web-1"]


def test_describe_unknown_filter_is_an_error(ec2):
    with pytest.raises(ClientError) as e:
        ec2().describe_key_pairs(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
    assert error_code(e) == "InvalidParameterValue"


def test_describe_returns_tags_and_create_time(family):
    c, stem, keys = family
    kp = c.describe_key_pairs(KeyNames=[f"{stem}-db-1"])["KeyPairs"][0]
    assert kp["Tags"] == [{"Key": "Name", "Value": f"{stem}-db-1"}, {"Key": "role", "Value": "db"},
                          {"Key": f"{stem}-only-db", "Value": "yes"}]
    assert "CreateTime" in kp
    assert keys["db-1"]["Tags"] == kp["Tags"]


def test_tag_specifications_on_create(ec2, unique):
    c = ec2()
    name = unique("tagged")
    created = c.create_key_pair(KeyName=name, KeyType="ed25519", TagSpecifications=[
        {"ResourceType": "key-pair", "Tags": [{"Key": "env", "Value": "prod"}, {"Key": "owner", "Value": ""}]}])
    assert created["Tags"] == [{"Key": "env", "Value": "prod"}, {"Key": "owner", "Value": ""}]
    kp = c.describe_key_pairs(KeyNames=[name])["KeyPairs"][0]
    assert kp["Tags"] == created["Tags"]
    with pytest.raises(ClientError) as e:
        c.create_key_pair(KeyName=unique("wrongtype"), KeyType="ed25519", TagSpecifications=[
            {"ResourceType": "security-group", "Tags": [{"Key": "a", "Value": "b"}]}])
    assert error_code(e) == "InvalidParameterValue"


# --- DeleteKeyPair -------------------------------------------------------------------------


def test_delete_by_name_and_by_id(ec2, unique):
    c = ec2()
    a, b = unique("del"), unique("del")
    c.create_key_pair(KeyName=a, KeyType="ed25519")
    kb = c.create_key_pair(KeyName=b, KeyType="ed25519")
    c.delete_key_pair(KeyName=a)
    resp = c.delete_key_pair(KeyPairId=kb["KeyPairId"])
    assert resp.get("Return") is True
    for name in (a, b):
        with pytest.raises(ClientError) as e:
            c.describe_key_pairs(KeyNames=[name])
        assert error_code(e) == "InvalidKeyPair.NotFound"
    # The name is free again.
    c.create_key_pair(KeyName=a, KeyType="ed25519")


def test_delete_unknown_name_succeeds_unknown_id_fails(ec2, unique):
    c = ec2()
    c.delete_key_pair(KeyName=unique("never-existed"))
    with pytest.raises(ClientError) as e:
        c.delete_key_pair(KeyPairId="key-0123456789abcdef0")
    assert error_code(e) == "InvalidKeyPair.NotFound"
    with pytest.raises(ClientError) as e:
        c.delete_key_pair(KeyPairId="not-a-key-id")
    assert error_code(e) in ("InvalidKeyPair.Malformed", "InvalidKeyPairId.Malformed", "InvalidKeyPair.NotFound")


def test_missing_key_name_is_missing_parameter(server):
    # boto3 and the CLI check required parameters client-side; an empty name reaches the server.
    p = server.cli("create-key-pair", "--key-name", "", check=False)
    assert p.returncode != 0
    assert "MissingParameter" in p.stderr or "InvalidParameterValue" in p.stderr


# --- Isolation -----------------------------------------------------------------------------


def test_other_account_cannot_see_delete_or_tag(ec2, unique):
    a, b = ec2("a"), ec2("b")
    name = unique("mine")
    kp = a.create_key_pair(KeyName=name, KeyType="ed25519")
    kid = kp["KeyPairId"]
    with pytest.raises(ClientError) as e:
        b.describe_key_pairs(KeyNames=[name])
    assert error_code(e) == "InvalidKeyPair.NotFound"
    with pytest.raises(ClientError) as e:
        b.describe_key_pairs(KeyPairIds=[kid])
    assert error_code(e) == "InvalidKeyPair.NotFound"
    assert b.describe_key_pairs(Filters=[{"Name": "key-pair-id", "Values": [kid]}])["KeyPairs"] == []
    assert b.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}])["KeyPairs"] == []
    with pytest.raises(ClientError) as e:
        b.delete_key_pair(KeyPairId=kid)
    assert error_code(e) == "InvalidKeyPair.NotFound"
    b.delete_key_pair(KeyName=name)  # succeeds as a no-op for b
    with pytest.raises(ClientError) as e:
        b.create_tags(Resources=[kid], Tags=[{"Key": "stolen", "Value": "1"}])
    assert error_code(e) == "InvalidKeyPair.NotFound"
    with pytest.raises(ClientError) as e:
        b.delete_tags(Resources=[kid])
    assert error_code(e) == "InvalidKeyPair.NotFound"
    # Still intact for a.
    mine = a.describe_key_pairs(KeyNames=[name])["KeyPairs"][0]
    assert mine["KeyPairId"] == kid
    assert mine["Tags"] == []


def test_regions_are_separate(ec2, unique):
    east, west = ec2("a", "us-east-1"), ec2("a", "eu-west-1")
    name = unique("regional")
    kp = east.create_key_pair(KeyName=name, KeyType="ed25519")
    with pytest.raises(ClientError) as e:
        west.describe_key_pairs(KeyNames=[name])
    assert error_code(e) == "InvalidKeyPair.NotFound"
    with pytest.raises(ClientError) as e:
        west.describe_key_pairs(KeyPairIds=[kp["KeyPairId"]])
    assert error_code(e) == "InvalidKeyPair.NotFound"
    # The same name is free in the other region and in another account.
    kw = west.create_key_pair(KeyName=name, KeyType="ed25519")
    kb = ec2("b", "us-east-1").create_key_pair(KeyName=name, KeyType="ed25519")
    assert len({kp["KeyPairId"], kw["KeyPairId"], kb["KeyPairId"]}) == 3
    assert len({kp["KeyFingerprint"], kw["KeyFingerprint"], kb["KeyFingerprint"]}) == 3
    # Deleting in one region leaves the other.
    west.delete_key_pair(KeyName=name)
    assert east.describe_key_pairs(KeyNames=[name])["KeyPairs"][0]["KeyPairId"] == kp["KeyPairId"]


# --- AWS CLI -------------------------------------------------------------------------------


def test_cli_create_import_describe_delete(server, unique, tmp_path):
    name = unique("cli")
    proc = server.cli("create-key-pair", "--key-name", name, "--query", "KeyMaterial", "--output", "text", check=False)
    assert proc.returncode == 0, proc.stderr
    material = proc.stdout
    assert material.startswith("-----BEGIN RSA PRIVATE KEY-----")
    pem = write_private(tmp_path, "cli.pem", material)
    derived = run("ssh-keygen", "-y", "-f", str(pem)).decode().strip()

    described = server.cli("describe-key-pairs", "--key-names", name, "--include-public-key")["KeyPairs"]
    assert two_fields(described[0]["PublicKey"]) == two_fields(derived)
    assert described[0]["KeyFingerprint"] == created_rsa_fingerprint(pem)

    priv, _ = ssh_keypair(tmp_path, "ed25519", name="cli_ed")
    imp_name = unique("cli-imp")
    imported = server.cli("import-key-pair", "--key-name", imp_name, "--public-key-material", f"fileb://{priv}.pub",
                          "--tag-specifications", "ResourceType=key-pair,Tags=[{Key=via,Value=cli}]")
    assert imported["KeyFingerprint"].rstrip("=") == ssh_keygen_sha256(priv)
    assert imported["Tags"] == [{"Key": "via", "Value": "cli"}]

    filtered = server.cli("describe-key-pairs", "--filters", "Name=tag:via,Values=cli", "Name=key-name,Values=cli-imp-*")
    assert imp_name in [k["KeyName"] for k in filtered["KeyPairs"]]
    assert name not in [k["KeyName"] for k in filtered["KeyPairs"]]

    server.cli("delete-key-pair", "--key-name", name)
    out = server.cli("describe-key-pairs", "--key-names", name, check=False)
    assert out.returncode != 0 and "InvalidKeyPair.NotFound" in out.stderr
    server.cli("delete-key-pair", "--key-pair-id", imported["KeyPairId"])
    out = server.cli("describe-key-pairs", "--key-pair-ids", imported["KeyPairId"], check=False)
    assert out.returncode != 0 and "InvalidKeyPair.NotFound" in out.stderr


def test_cli_import_of_private_key_is_format_error(server, unique, tmp_path):
    priv, _ = ssh_keypair(tmp_path, "ed25519", name="cli_priv")
    p = server.cli("import-key-pair", "--key-name", unique("cli-bad"), "--public-key-material", f"fileb://{priv}",
                   check=False)
    assert p.returncode != 0
    assert "InvalidKeyPair.Format" in p.stderr


def test_concurrent_creates_of_one_name_yield_exactly_one_key(ec2, unique):
    from concurrent.futures import ThreadPoolExecutor

    name = unique("race")

    def create(_):
        try:
            return ec2().create_key_pair(KeyName=name, KeyType="ed25519")["KeyPairId"]
        except ClientError as e:
            return e.response["Error"]["Code"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(create, range(16)))
    winners = [r for r in results if r.startswith("key-")]
    assert len(winners) == 1, results
    assert sorted(set(results) - set(winners)) == ["InvalidKeyPair.Duplicate"]
    assert [k["KeyPairId"] for k in ec2().describe_key_pairs(KeyNames=[name])["KeyPairs"]] == winners


@pytest.mark.parametrize("bits", [2048, 4096])
def test_import_accepts_rfc4716_and_base64_der_with_ec2s_fingerprint(ec2, server, tmp_path, unique, bits):
    """The three formats ImportKeyPair documents give the same key and EC2's fingerprint: the MD5
    of the DER public key, as `openssl pkey -pubin -outform DER | openssl md5 -c` prints it."""
    c = ec2()
    path, line = ssh_keypair(tmp_path, "rsa", bits=bits)
    pub = pathlib.Path(f"{path}.pub")
    rfc4716 = run("ssh-keygen", "-e", "-f", str(pub))
    assert rfc4716.startswith(b"---- BEGIN SSH2 PUBLIC KEY ----")
    spki_pem = run("ssh-keygen", "-e", "-m", "PKCS8", "-f", str(pub))
    der_b64 = b"".join(l for l in spki_pem.splitlines() if not l.startswith(b"-----"))
    expected = openssl_digest(run("openssl", "md5", "-c", stdin=run("openssl", "pkey", "-pubin", "-outform", "DER",
                                                                     stdin=spki_pem)))
    seen = {}
    for form, material in (("openssh", line.encode()), ("rfc4716", rfc4716), ("der", der_b64)):
        name = unique(form)
        kp = c.import_key_pair(KeyName=name, PublicKeyMaterial=material)
        seen[form] = kp["KeyFingerprint"]
        [described] = c.describe_key_pairs(KeyNames=[name], IncludePublicKey=True)["KeyPairs"]
        assert two_fields(described["PublicKey"]) == two_fields(line), form
    assert seen == {"openssh": expected, "rfc4716": expected, "der": expected}
    # The AWS CLI reads the files as they are (fileb://).
    rfc_path = tmp_path / "key.rfc4716"
    rfc_path.write_bytes(rfc4716)
    out = server.cli("import-key-pair", "--key-name", unique("cli-rfc"), "--public-key-material", f"fileb://{rfc_path}")
    assert out["KeyFingerprint"] == expected
