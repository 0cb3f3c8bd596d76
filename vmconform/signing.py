"""Signed probes and a Secure Boot variable store that trusts them: vmconform's own test keys.

* `signing_key(name)`: an RSA-2048 key and a self-signed X.509 certificate of vmconform's own, made on first
  use with Python's `cryptography` (already installed with virt-firmware) and kept in the cache,
  ``${VMCONFORM_CACHE:-${XDG_CACHE_HOME:-~/.cache}/vmconform}/keys/`` (never in the repository). Two
  keys: `TRUSTED_KEY` ("vmconform-test", trusted) and `REVOKED_KEY` ("vmconform-revoked", in db and dbx).
* `sign(image, key)`: an Authenticode signature on a PE image by Debian's `sbsign` (sbsigntool, what Debian
  signs its own boot chain with), which appends the certificate table after the last section, points the
  security data directory at it and recomputes the PE checksum. Its PKCS#7 carries a signingTime, so two
  signatures of the same image differ in that time (and the checksum), nothing else.
* `secure_boot_vars()`: an EDK2 variable-store template with `TRUSTED_KEY` enrolled in PK, KEK and db,
  `REVOKED_KEY` in db and dbx, and Secure Boot enabled, made with virt-firmware's `virt-fw-vars` (the
  field's tool for EDK2 stores) and cached. Debian's `AAVMF_VARS.fd` cannot be its base: it is blank
  (EDK2 formats it on first boot) and virt-firmware finds no store in it, so the base is the store of
  `AAVMF_VARS.ms.fd` (formatted by Debian's build) with every variable removed. Vendor files are only read.
* `vendor_vars_with_test_db()`: Debian's Microsoft-keys store (`AAVMF_VARS.ms.fd`) as it is, with the trusted
  test certificate added to db, so the signed probe can report the state of the store vendors boot with.
* `secure_boot_firmware(arch)`: that template with Debian's code as a `Firmware` for `vmconform.runner.boot`:
  AAVMF_CODE.ms.fd on aarch64 (the code of the secure-enrolled descriptor), AAVMF32_CODE.fd on arm (no
  descriptor says so, but it is built with Secure Boot and honours the same store: ArmVirtQemu's flash
  layout is the same on both, and an unsigned probe is refused there as on aarch64).

Errors a user can act on are `SigningError` (one line); a missing tool names its Debian package.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from vmconform import firmware as fwmod
from vmconform.assets.cache import cache_dir, digest, locked, sha256_file

__all__ = [
    "SigningError", "SigningKey", "TRUSTED_KEY", "REVOKED_KEY", "OWNER_GUID", "DEBIAN_SB_CODE", "DEBIAN_SB_VARS",
    "keys_dir", "signing_key", "sign", "secure_boot_vars", "vendor_vars_with_test_db", "secure_boot_firmware",
]  # fmt: skip

TRUSTED_KEY = "vmconform-test"
REVOKED_KEY = "vmconform-revoked"
OWNER_GUID = UUID("0B0E5D1C-7A2E-4C5F-9B1D-766D636F6E67")  # SignatureOwner of vmconform's entries in PK/KEK/db/dbx
DEBIAN_SB_CODE = {
    "aarch64": Path("/usr/share/AAVMF/AAVMF_CODE.ms.fd"),  # 40-edk2-aarch64-secure-enrolled.json's code
    "arm": Path("/usr/share/AAVMF/AAVMF32_CODE.fd"),  # built with Secure Boot; no descriptor claims it
}
DEBIAN_SB_VARS = Path("/usr/share/AAVMF/AAVMF_VARS.ms.fd")  # its store: formatted, Microsoft keys enrolled
_VALID = (datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC), datetime.datetime(2049, 12, 31, tzinfo=datetime.UTC))


class SigningError(Exception):
    """A key, a signature or the store could not be made; one line saying what and how to fix it."""


@dataclass(frozen=True)
class SigningKey:
    """A private key and its self-signed certificate, both PEM files in `keys_dir()`."""

    name: str
    key: Path
    cert: Path

    @property
    def common_name(self) -> str:
        return f"{self.name} (vmconform test key, not for production)"


def keys_dir() -> Path:
    """``<cache>/keys``, private to the user (created on first use)."""
    path = cache_dir() / "keys"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def signing_key(name: str = TRUSTED_KEY) -> SigningKey:
    """The test key `name`, made on first use (RSA-2048, SHA-256 certificate valid 2020..2049)."""
    folder = keys_dir()
    key = SigningKey(name, folder / f"{name}.key", folder / f"{name}.crt")
    if key.key.exists() and key.cert.exists():
        return key
    with locked(folder / ".lock"):
        if not (key.key.exists() and key.cert.exists()):
            _make_key(key)
    return key


def _make_key(key: SigningKey) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, key.common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_VALID[0])
        .not_valid_after(_VALID[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(private.public_key()), critical=False)
        .sign(private, hashes.SHA256())
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(key.key, pem, 0o600)
    _write(key.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def _tool(name: str, package: str) -> str:
    """The path of `name`: next to this Python (a venv's bin) or on PATH; else a SigningError naming the package."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise SigningError(f"{name} is missing: install it with `apt-get install {package}` (as root)")
    return found


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()] or ["no output"]
        raise SigningError(f"{Path(argv[0]).name} failed (exit {done.returncode}): {lines[-1].strip()}")
    return done.stdout


def sign(image: bytes, key: SigningKey | None = None) -> bytes:
    """`image` (a PE file) with an Authenticode signature by `key` (default: the trusted test key)."""
    key = key or signing_key()
    sbsign = _tool("sbsign", "sbsigntool")
    with tempfile.TemporaryDirectory(prefix="vmconform-sign-") as tmp:
        unsigned, signed = Path(tmp) / "unsigned.efi", Path(tmp) / "signed.efi"
        unsigned.write_bytes(image)
        _run([sbsign, "--key", str(key.key), "--cert", str(key.cert), "--output", str(signed), str(unsigned)])
        return signed.read_bytes()


def secure_boot_vars(base: Path = DEBIAN_SB_VARS) -> Path:
    """The cached vars template: Secure Boot on, `TRUSTED_KEY` in PK, KEK and db, `REVOKED_KEY` in db and dbx.

    Made from `base` (an EDK2 store; read, never written) emptied of its variables, so no vendor key stays.
    Boot a fresh copy of it (the runner copies the template per boot), never the template itself.
    """
    trusted, revoked = signing_key(TRUSTED_KEY), signing_key(REVOKED_KEY)
    owner = str(OWNER_GUID).lower()
    enroll: list[str | Path] = [
        *("--set-pk", owner, trusted.cert),
        *("--add-kek", owner, trusted.cert),
        *("--add-db", owner, trusted.cert),
        *("--add-db", owner, revoked.cert),
        *("--add-dbx-cert", owner, revoked.cert),
        "--secure-boot",
    ]
    return _cached_store("AAVMF_VARS.vmconform.fd", base, enroll, empty=True)


def vendor_vars_with_test_db(base: Path = DEBIAN_SB_VARS) -> Path:
    """The cached vars template: `base` as it is (Debian's: Microsoft KEK and db, Secure Boot on) with
    `TRUSTED_KEY` added to db, so the signed probe runs, and reports, under the vendor's own keys."""
    trusted = signing_key(TRUSTED_KEY)
    return _cached_store(f"{base.stem}+vmconform.fd", base, ["--add-db", str(OWNER_GUID).lower(), trusted.cert])


def _cached_store(name: str, base: Path, edits: list[str | Path], empty: bool = False) -> Path:
    """`base` (emptied of its variables first when `empty`) edited by `virt-fw-vars edits`, cached by its inputs."""
    tool = _tool("virt-fw-vars", "virt-firmware (pip) or python3-virt-firmware")
    inputs = [a.read_bytes() if isinstance(a, Path) else a for a in edits]
    key = digest(["vars-template v1", name, str(empty), sha256_file(base), *inputs])
    folder = cache_dir() / "secureboot" / key[:16]
    template = folder / name
    if template.exists():
        return template
    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder / ".lock"):
        if template.exists():
            return template
        empty_copy, out = folder / f".empty.{os.getpid()}.fd", folder / f".template.{os.getpid()}.fd"
        try:
            if empty:
                _empty_store(base, empty_copy)
            source = empty_copy if empty else base
            _run([tool, "--input", str(source), *(str(a) for a in edits), "--output", str(out)])
            out.replace(template)
        finally:
            empty_copy.unlink(missing_ok=True)
            out.unlink(missing_ok=True)
    return template


def _empty_store(base: Path, out: Path) -> None:
    """`base`'s EDK2 store (firmware volume and variable store headers as they are) with no variables, to `out`."""
    import contextlib
    import io

    from virt.firmware.efi import efivar  # type: ignore[import-untyped]
    from virt.firmware.varstore import edk2  # type: ignore[import-untyped]

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            edk2.Edk2VarStore(str(base)).write_varstore(str(out), efivar.EfiVarList())
    except SystemExit:  # virt-firmware logs and exits when it finds no store
        raise SigningError(f"virt-firmware finds no EDK2 variable store in {base}") from None
    except OSError as e:
        raise SigningError(f"{base}: cannot read it ({e.strerror})") from None


def secure_boot_firmware(
    arch: str = "aarch64",
    code: Path | None = None,
    vendor_keys: bool = False,
    name: str | None = None,
    source: str = "vmconform.signing",
) -> fwmod.Firmware:
    """Debian's AAVMF (or `code`) with `secure_boot_vars()` as its vars template (enforcing, only our keys), or
    with `vendor_vars_with_test_db()` when `vendor_keys` (Debian's Microsoft-keys store, our cert added to db).
    Named `name` (default "edk2-ms" / "edk2-sb"); `Firmware.secure_boot` says which keys ("microsoft" /
    "test-key"), so a run signs its probes for it."""
    if code is None and arch not in DEBIAN_SB_CODE:
        raise SigningError(f"no Secure Boot firmware for {arch}; known: {', '.join(DEBIAN_SB_CODE)}")
    code = code or DEBIAN_SB_CODE[arch]
    if not code.is_file():  # before a template is made for it
        raise SigningError(f"{code} is missing; install {'qemu-efi-arm' if arch == 'arm' else 'qemu-efi-aarch64'}")
    if vendor_keys:
        fw = fwmod.explicit(name or "edk2-ms", arch, code, vendor_vars_with_test_db(), source=source)
        return dataclasses.replace(fw, secure_boot="microsoft")
    fw = fwmod.explicit(name or "edk2-sb", arch, code, secure_boot_vars(), source=source)
    return dataclasses.replace(fw, secure_boot="test-key")
