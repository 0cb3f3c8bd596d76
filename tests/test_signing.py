"""vmconform.signing: test keys made once in the cache, Authenticode signatures on both probes checked with two
independent verifiers (sbverify, osslsigncode), and the Secure Boot vars template read back with virt-firmware."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pefile
import pytest

from vmconform import signing
from vmconform.assets.cache import sha256_file
from vmconform.probe import build_probe

TOOLS = {"sbsign": "sbsigntool", "sbverify": "sbsigntool", "osslsigncode": "osslsigncode", "openssl": "openssl"}


@pytest.fixture(autouse=True)
def _tools() -> None:
    """A missing tool is a failure naming its install command (scripts/setup.sh test installs them), never a skip."""
    missing = {t: p for t, p in TOOLS.items() if not shutil.which(t)}
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: apt-get install {' '.join(sorted(set(missing.values())))}",
                    pytrace=False)  # fmt: skip


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VMCONFORM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False, timeout=60)


def sbverify(image: Path, cert: Path) -> bool:
    done = run("sbverify", "--cert", cert, image)
    return done.returncode == 0 and "Signature verification OK" in done.stdout + done.stderr


def osslsigncode_verify(image: Path, cert: Path) -> bool:
    done = run("osslsigncode", "verify", "-CAfile", cert, "-in", image)
    return done.returncode == 0 and "Signature verification: ok" in done.stdout


def test_keys_are_made_once_in_the_cache_and_stay_private(cache: Path) -> None:
    key = signing.signing_key()
    assert (key.key.parent, key.cert.parent) == (cache / "keys", cache / "keys")
    assert key.key.stat().st_mode & 0o777 == 0o600 and (cache / "keys").stat().st_mode & 0o777 == 0o700
    first = (key.key.read_bytes(), key.cert.read_bytes())
    assert (signing.signing_key().key.read_bytes(), signing.signing_key().cert.read_bytes()) == first  # not remade
    revoked = signing.signing_key(signing.REVOKED_KEY)
    assert revoked.cert.read_bytes() != key.cert.read_bytes()
    text = run("openssl", "x509", "-in", key.cert, "-noout", "-subject", "-dates", "-ext", "extendedKeyUsage").stdout
    assert 'CN = "vmconform-test (vmconform test key, not for production)"' in text
    assert "notBefore=Jan  1 00:00:00 2020 GMT" in text and "Code Signing" in text
    rsa = run("openssl", "rsa", "-in", key.key, "-noout", "-text").stdout
    assert "Private-Key: (2048 bit" in rsa


@pytest.mark.parametrize("arch", ["aarch64", "arm"])
def test_signed_probe_verifies_with_two_independent_tools(arch: str, cache: Path, tmp_path: Path) -> None:
    key = signing.signing_key()
    unsigned = build_probe(arch, "signed1")
    signed = signing.sign(unsigned, key)
    pe = pefile.PE(data=signed)
    table = pe.OPTIONAL_HEADER.DATA_DIRECTORY[4]  # IMAGE_DIRECTORY_ENTRY_SECURITY: a file offset, not an RVA
    assert (table.VirtualAddress, table.VirtualAddress + table.Size) == (len(unsigned), len(signed))
    assert table.VirtualAddress % 8 == 0 and pe.OPTIONAL_HEADER.CheckSum == pe.generate_checksum()
    assert pefile.PE(data=unsigned).OPTIONAL_HEADER.CheckSum == pefile.PE(data=unsigned).generate_checksum()
    path, bare = tmp_path / "signed.efi", tmp_path / "unsigned.efi"
    path.write_bytes(signed)
    bare.write_bytes(unsigned)
    assert sbverify(path, key.cert) and osslsigncode_verify(path, key.cert)
    other = signing.signing_key(signing.REVOKED_KEY)
    assert not sbverify(path, other.cert) and not osslsigncode_verify(path, other.cert)  # signed by ours only
    assert not sbverify(bare, key.cert) and not osslsigncode_verify(bare, key.cert)


def test_changing_a_signed_byte_breaks_the_signature(cache: Path, tmp_path: Path) -> None:
    key = signing.signing_key()
    signed = bytearray(signing.sign(build_probe("aarch64", "tamper1"), key))
    text = pefile.PE(data=bytes(signed)).sections[0].PointerToRawData
    signed[text + 0x40] ^= 0x01  # one bit of the code
    path = tmp_path / "tampered.efi"
    path.write_bytes(bytes(signed))
    assert not sbverify(path, key.cert) and not osslsigncode_verify(path, key.cert)


def test_sign_errors_are_one_line(cache: Path) -> None:
    with pytest.raises(signing.SigningError, match="sbsign failed"):
        signing.sign(b"MZ not a PE file")


def test_secure_boot_vars_template_enrolls_our_keys_only(cache: Path) -> None:
    from virt.firmware.varstore import edk2  # type: ignore[import-untyped]

    vendor = sha256_file(signing.DEBIAN_SB_VARS)
    template = signing.secure_boot_vars()
    assert template.parent.parent == cache / "secureboot" and sha256_file(signing.DEBIAN_SB_VARS) == vendor
    assert signing.secure_boot_vars() == template and template.stat().st_size == signing.DEBIAN_SB_VARS.stat().st_size
    blobs = {name: _der(signing.signing_key(name).cert) for name in (signing.TRUSTED_KEY, signing.REVOKED_KEY)}
    varlist = edk2.Edk2VarStore(str(template)).get_varlist()
    assert sorted(varlist) == ["CustomMode", "KEK", "PK", "SecureBootEnable", "db", "dbx"]
    assert bytes(varlist["SecureBootEnable"].data) == b"\x01"
    trusted, revoked = blobs[signing.TRUSTED_KEY], blobs[signing.REVOKED_KEY]
    for name, want in (("PK", (trusted,)), ("KEK", (trusted,)), ("db", (trusted, revoked)), ("dbx", (revoked,))):
        data = bytes(varlist[name].data)
        assert all(cert in data for cert in want), name
        assert str(varlist[name].guid).upper() in {"8BE4DF61-93CA-11D2-AA0D-00E098032B8C",
                                                   "D719B2CB-3D3A-4596-A3BC-DAD00E67656F"}  # fmt: skip
        assert signing.OWNER_GUID.bytes_le in data and b"Microsoft" not in data
    assert trusted not in bytes(varlist["dbx"].data)


def _der(pem: Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return x509.load_pem_x509_certificate(pem.read_bytes()).public_bytes(serialization.Encoding.DER)


def test_vendor_store_with_the_test_cert_keeps_the_vendor_keys(cache: Path) -> None:
    from virt.firmware.varstore import edk2  # type: ignore[import-untyped]

    vendor = edk2.Edk2VarStore(str(signing.DEBIAN_SB_VARS)).get_varlist()
    template = signing.vendor_vars_with_test_db()
    assert template.name == "AAVMF_VARS.ms+vmconform.fd" and signing.vendor_vars_with_test_db() == template
    varlist = edk2.Edk2VarStore(str(template)).get_varlist()
    assert sorted(varlist) == sorted(vendor)
    for name in ("PK", "KEK", "dbx", "SecureBootEnable"):
        assert bytes(varlist[name].data) == bytes(vendor[name].data), name
    db, vendor_db = bytes(varlist["db"].data), bytes(vendor["db"].data)
    assert db.startswith(vendor_db) and _der(signing.signing_key().cert) in db[len(vendor_db) :]
    assert b"Microsoft" in db
