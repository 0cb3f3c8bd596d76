"""The host-side reader of U-Boot's ``\\ubootefi.var``, on the bytes a real U-Boot wrote and on hostile variants.

One real boot (QEMU TCG, Debian's u-boot-qemu as -bios, the FW-6 store flow on the aarch64 reference image) makes
the file; mtools (an independent FAT reader) copies it out as the oracle of the bytes found on the ESP, and the
probe's own lines (the variable's data is its nonce) are the oracle of what the entries hold. The hostile
variants are that file with a field changed (the CRC recomputed where the change is meant to get past it): each
must be refused with one line naming the file, never a traceback.
"""

from __future__ import annotations

import random
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest

from tests.host_tools import require
from tests.hostile_files import fifo_error
from tests.run_records import read_results
from vmconform import cases, config, nvram
from vmconform.hypervisors import backend_for
from vmconform.image import DiskSpec, EspFile, build_disk
from vmconform.probe.contract import BOOTNEXT_OPTION, NV_VARIABLE_PREFIX, VENDOR_GUID
from vmconform.varstore import HostVariable
from vmconform.varstore_uboot import (
    MAX_FILE_BYTES,
    VarFileError,
    find_uboot_variable,
    parse_var_file,
    read_esp_var_file,
    uboot_store_evidence,
)
from vmconform.verdicts import firmware as vfirm

REPO = Path(__file__).resolve().parent.parent
GLOBAL_GUID = UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")


@dataclass(frozen=True)
class UbootRun:
    outcome: nvram.StoreOutcome
    image: Path
    file: bytes  # \ubootefi.var as mtools copies it out of the image


@pytest.fixture(scope="module")
def uboot_run(tmp_path_factory: pytest.TempPathFactory) -> UbootRun:
    """The FW-6 store flow booted once on U-Boot: the probe sets an NV variable, resets, deletes it, powers off."""
    require("qemu-system-aarch64", "/usr/lib/u-boot/qemu_arm64/u-boot.bin", "mcopy")
    entry = config.load(REPO / "hypervisors.yaml").get("qemu")
    fw = config.resolve_firmware(entry, "u-boot", "aarch64")
    out = tmp_path_factory.mktemp("uboot-store")
    outcome = nvram.run_store_flow(backend_for(entry), cases.find("aarch64"), fw, out / "work", out / "out", 120)
    image = out / "work" / "aarch64-reference.img"
    copy = out / "ubootefi.var"
    subprocess.run(["mcopy", "-n", "-i", f"{image}@@1M", "::/ubootefi.var", str(copy)], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    return UbootRun(outcome, image, copy.read_bytes())


@pytest.mark.boot
def test_the_file_u_boot_wrote_is_found_and_parsed(uboot_run: UbootRun) -> None:
    found = read_esp_var_file(uboot_run.image)
    assert found is not None
    data, where = found
    assert data == uboot_run.file and where == "partition 1"  # the same bytes mtools copies out
    assert data[8:15] == b"UbEfiVa" and struct.unpack_from("<I", data, 16)[0] == len(data)  # U-Boot writes Length
    entries = parse_var_file(data)
    assert entries and all(e.attributes & 1 for e in entries)  # only NV variables are written to the file
    # U-Boot keeps PlatformLang (global variable GUID) non-volatile; phase 2 deleted the probe's variable
    assert any(e.name == "PlatformLang" and e.guid == GLOBAL_GUID for e in entries)
    nonce = uboot_run.outcome.nonce
    assert isinstance(find_uboot_variable(data, f"{NV_VARIABLE_PREFIX}{nonce}", VENDOR_GUID), str)


@pytest.mark.boot
def test_fw6_on_u_boot_carries_what_the_host_found(uboot_run: UbootRun) -> None:
    """At the probe's reset the host read the variable with the nonce as its data, as the probe set it."""
    out = uboot_run.outcome
    assert out.set_status == "EFI_SUCCESS" and out.before != out.after
    name = f"{NV_VARIABLE_PREFIX}{out.nonce}"
    seen = f"at the probe's reset the host found {name} in \\ubootefi.var on the image's ESP: "
    assert out.esp_store.startswith(seen + f"attributes 0x7, data {out.nonce.encode()!r};"), out.esp_store
    assert f"after the run the host read the image's ESP: \\ubootefi.var (partition 1) " \
           f"holds no variable {name}" in out.esp_store  # fmt: skip
    (v,) = vfirm.instance_store(out.before, out.after, out.set_status, out.records, out.vars_name, out.image_store,
                                "2.0", "u-boot", out.esp_store)  # fmt: skip
    assert v.status == "fail" and v.evidence.endswith(out.esp_store) and "ubootefi.var" in out.image_store


def _fixed(raw: bytearray) -> bytes:
    """`raw` with its header's Crc32 made to match its entries again (to get a change past the CRC check)."""
    length = struct.unpack_from("<I", raw, 16)[0]
    struct.pack_into("<I", raw, 20, zlib.crc32(bytes(raw[24:length])))
    return bytes(raw)


def _refused(raw: bytes, expect: str) -> None:
    with pytest.raises(VarFileError) as e:
        parse_var_file(raw, "t.var")
    message = str(e.value)
    assert message.startswith("t.var: ") and "\n" not in message and expect in message, message


@pytest.mark.boot
def test_hostile_variants_of_u_boots_file(uboot_run: UbootRun) -> None:
    good = uboot_run.file
    first = 24  # the first entry
    for n in range(len(good)):  # every truncation: the header, or Length past the end
        with pytest.raises(VarFileError):
            parse_var_file(good[:n])
    _refused(b"\0" * 8 + b"UbEfiVb\1" + good[16:], "no U-Boot store (magic b'UbEfiVb'")
    _refused(good[:15] + b"\2" + good[16:], "revision 2")
    _refused(b"\1" + good[1:], "Reserved is 0x1")
    raw = bytearray(good)
    struct.pack_into("<I", raw, 16, 0xFFFFFFFF)  # Length lies: far past the file
    _refused(bytes(raw), "Length 4294967295 lies outside 24..")
    struct.pack_into("<I", raw, 16, 8)  # Length inside the header
    _refused(bytes(raw), "Length 8 lies outside")
    raw = bytearray(good)
    raw[-1] ^= 0xFF
    _refused(bytes(raw), "over the entries (U-Boot refuses that)")
    raw = bytearray(good)
    struct.pack_into("<I", raw, first, 0xFFFFFFFF)  # DataSize far past Length
    _refused(_fixed(raw), f"the entry at byte {first} has DataSize 4294967295, past Length")
    raw = bytearray(good)
    length = struct.unpack_from("<I", raw, 16)[0]
    raw[first + 32 : length] = b"A" * (length - first - 32)  # a name that never ends
    _refused(_fixed(raw), f"the name of the entry at byte {first} has no NUL before Length")
    raw = bytearray(good)
    struct.pack_into("<I", raw, 16, length + 8)  # a last entry with no room for its header
    _refused(_fixed(bytearray(bytes(raw) + b"\0" * 8)), f"the entry at byte {length} has no room")
    _refused(good + b"\0" * MAX_FILE_BYTES, f"over the {MAX_FILE_BYTES} bytes")


@pytest.mark.boot
def test_random_changes_to_u_boots_file_are_refused_or_read(uboot_run: UbootRun) -> None:
    """2,000 random byte changes (CRC fixed, so the entries are walked): a tuple of entries or one line."""
    rng = random.Random(1729)
    for _ in range(2000):
        raw = bytearray(uboot_run.file)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(16, len(raw))
            raw[at] = rng.choice((0, 0xFF, rng.randrange(256)))
        try:
            entries = parse_var_file(_fixed(raw))
        except VarFileError as e:
            assert "\n" not in str(e)
        else:
            assert all(24 <= e.offset < len(raw) for e in entries)


def _esp_image(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "disk.img"
    build_disk(DiskSpec(files=(EspFile("ubootefi.var", data),), seed="uboot-var")).save(path)
    return path


def test_a_store_file_placed_on_an_esp_by_vmconforms_image_builder(tmp_path: Path) -> None:
    """Found, and read as the variable it holds (a file built from parts: one entry, CRC over it)."""
    entry = struct.pack("<IIQ16s", 3, 7, 0, VENDOR_GUID.bytes_le) + "Vx\0".encode("utf-16-le") + b"abc"
    entry += b"\0" * (-len(entry) % 8)
    raw = struct.pack("<Q7sBII", 0, b"UbEfiVa", 1, 24 + len(entry), zlib.crc32(entry)) + entry
    image = _esp_image(tmp_path, raw)
    assert read_esp_var_file(image) == (raw, "partition 1")
    assert find_uboot_variable(raw, "Vx", VENDOR_GUID) == HostVariable(7, b"abc")
    assert uboot_store_evidence(image, "Vx", VENDOR_GUID).endswith("on the image's ESP: attributes 0x7, data b'abc'")
    assert uboot_store_evidence(image, "Vy", VENDOR_GUID).endswith("holds no variable Vy (" + str(VENDOR_GUID) +
                                                                   ") (1 others)")  # fmt: skip


def test_images_that_hide_or_lie_about_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    image = tmp_path / "empty" / "disk.img"
    build_disk(DiskSpec(files=(EspFile("EFI/BOOT/X.TXT", b"x"),), seed="none")).save(image)
    assert read_esp_var_file(image) is None
    assert uboot_store_evidence(image, "V", VENDOR_GUID) == "the host found no \\ubootefi.var on the image's ESP"
    # a directory entry that says 4 GiB: refused by its size, nothing that large is read
    image = _esp_image(tmp_path, b"x" * 512)
    blob = bytearray(image.read_bytes())
    name = b"UBOOTEFIVAR"
    at = blob.find(name)
    assert at > 0
    struct.pack_into("<I", blob, at + 28, 0xFFFFFFFF)
    image.write_bytes(bytes(blob))
    with pytest.raises(VarFileError, match=r"is 4294967295 bytes, over the 1048576"):
        read_esp_var_file(image)
    flat = tmp_path / "flat.img"
    flat.write_bytes(b"\0" * 65536)
    with pytest.raises(VarFileError, match="no valid GPT"):
        read_esp_var_file(flat)
    got = fifo_error(tmp_path / "fifo", lambda p: uboot_store_evidence(p, "V", VENDOR_GUID))
    assert got.startswith("the host could not read ubootefi.var from the image: ") and "\n" not in got, got


@pytest.mark.boot
def test_the_nvram_suite_on_u_boot_carries_the_hosts_finding(tmp_path: Path) -> None:
    """The suite's FW-4/FW-5/FW-6 tests on U-Boot (-bios): each fails (no store of the VM's own; the image changed)
    and each verdict says what the host found of its variable in \\ubootefi.var (read from results.json)."""
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suite/test_firmware.py", "--firmware", "u-boot",
         "--arch", "aarch64", "-k", "nvram or variables_not_in_image", f"--reports-dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert p.returncode == 1, p.stdout[-3000:]  # FW-6 (MUST) fails; FW-4/FW-5 are SHOULD warnings
    verdicts = {r["test"].split("::")[-1].split("[")[0]: (r["nonce"], r["verdicts"])
                for r in read_results(tmp_path)["results"]}  # fmt: skip
    assert len(verdicts) == 5, verdicts
    for test, (nonce, found) in verdicts.items():
        assert {v["status"] for v in found} == {"fail"}, (test, found)
        name = f"Boot{BOOTNEXT_OPTION:04X}" if test == "test_nvram_bootnext" else f"{NV_VARIABLE_PREFIX}{nonce}"
        for v in found:
            assert f"the host found {name} in \\ubootefi.var" in v["evidence"], (test, v)
            if test == "test_nvram_power_cycle":
                assert f"powered the VM off the host found {name} in \\ubootefi.var: attributes 0x7, data " \
                       f"{nonce.encode()!r}" in v["evidence"]  # fmt: skip
