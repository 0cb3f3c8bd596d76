"""hypervisors.yaml: every bad input gives one line naming the file, the line, the key and the fix."""

from pathlib import Path

import pytest

from vmconform import config

REPO = Path(__file__).resolve().parent.parent

GOOD = """\
default: qemu
hypervisors:
  qemu:
    backend: qemu
    accel: tcg
    timeout: 30
    arches:
      aarch64: {binary: qemu-system-aarch64, machine: virt, cpu: cortex-a57, memory: 512M}
    firmwares:
      edk2:
        aarch64: auto
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "hypervisors.yaml"
    p.write_text(text)
    return p


def load_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(config.ConfigError) as ei:
        f = config.load(write(tmp_path, text))
        e = f.get(None)
        config.check_ready(e, list(e.arches), [e.default_firmware])
    msg = str(ei.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def test_repository_file_loads_and_resolves():
    f = config.load(REPO / "hypervisors.yaml")
    assert f.default == "qemu"
    e = f.get(None)
    assert e.accel == "tcg" and set(e.arches) == {"aarch64", "arm"}
    fw = config.resolve_firmware(e, "edk2", "aarch64")
    assert fw.code.name == "AAVMF_CODE.fd" and fw.vars_template.name == "AAVMF_VARS.fd"
    assert fw.source.endswith(".json")


def test_unknown_key_names_file_line_key_and_allowed(tmp_path):
    msg = load_error(tmp_path, GOOD.replace("cpu: cortex-a57", "cpuu: cortex-a57"))
    assert msg.startswith(f"{tmp_path / 'hypervisors.yaml'}:8: hypervisors.qemu.arches.aarch64.cpuu: unknown key")
    assert "allowed here: binary, cpu, extra_args, gic_versions, machine, memory" in msg


def test_missing_firmware_file(tmp_path):
    msg = load_error(
        tmp_path,
        GOOD.replace("aarch64: auto", "aarch64: {code: /nonexistent/CODE.fd, vars: /nonexistent/VARS.fd}"),
    )
    assert ":11: hypervisors.qemu.firmwares.edk2.aarch64" in msg
    assert "code: /nonexistent/CODE.fd is missing or unreadable; fix the path" in msg


def test_missing_binary(tmp_path):
    msg = load_error(tmp_path, GOOD.replace("binary: qemu-system-aarch64", "binary: qemu-system-nonesuch"))
    assert "hypervisors.qemu.arches.aarch64.binary: 'qemu-system-nonesuch' not found on PATH" in msg
    assert "install qemu-system-arm or give the full path" in msg


def test_unknown_hypervisor_lists_configured_names(tmp_path):
    f = config.load(write(tmp_path, GOOD))
    with pytest.raises(config.ConfigError, match=r"no hypervisor named 'nope'; configured: qemu "):
        f.get("nope")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hypervisors: [\n", "not valid YAML"),
        ("- a\n- b\n", "(top level): must be a mapping"),
        (GOOD.replace("backend: qemu", "backend: vmware"), "unknown backend 'vmware'; known: qemu"),
        (GOOD.replace("timeout: 30", "timeout: soon"), "timeout: must be a positive number of seconds"),
        (GOOD.replace("accel: tcg", "accel: warp"), "unknown accelerator 'warp'"),
        (
            GOOD.replace("default: qemu", "default: xen"),
            "default: names 'xen', which is not under 'hypervisors'",
        ),
        (
            GOOD.replace("aarch64: auto", "aarch64: 42"),
            "must be 'auto', {descriptor: PATH}, {code: PATH, vars: PATH}, {bios: PATH} or "
            "{secure_boot: test-key | microsoft}",
        ),
        ("default: qemu\n", "missing key 'hypervisors'"),
    ],
)
def test_bad_inputs_give_one_line(tmp_path, text, expected):
    assert expected in load_error(tmp_path, text)


def test_missing_file(tmp_path):
    with pytest.raises(config.ConfigError, match="file not found; pass --hypervisors-file PATH"):
        config.load(tmp_path / "nope.yaml")


def test_unreadable_firmware_descriptor(tmp_path):
    desc = tmp_path / "fw.json"
    desc.write_text("{not json")
    msg = load_error(tmp_path, GOOD.replace("aarch64: auto", f"aarch64: {{descriptor: {desc}}}"))
    assert "not a readable JSON firmware descriptor" in msg and str(desc) in msg


def test_bios_firmware_has_no_vars_store(tmp_path):
    rom = tmp_path / "u-boot.bin"
    rom.write_bytes(b"\0" * 64)
    f = config.load(write(tmp_path, GOOD.replace("aarch64: auto", f"aarch64: {{bios: {rom}}}")))
    fw = config.resolve_firmware(f.get(None), "edk2", "aarch64")
    assert (fw.mapping, fw.code, fw.vars_template) == ("bios", rom, None)
    msg = load_error(tmp_path, GOOD.replace("aarch64: auto", "aarch64: {bios: /nonexistent/u-boot.bin}"))
    assert "bios: /nonexistent/u-boot.bin is missing or unreadable" in msg


def test_not_supported_declares_clauses_with_reasons(tmp_path):
    text = GOOD + "    not_supported:\n      FW-5: variables are kept in RAM by design\n"
    assert config.load(write(tmp_path, text)).get(None).not_supported == {"FW-5": "variables are kept in RAM by design"}
    msg = load_error(tmp_path, GOOD + "    not_supported:\n      FW-55: typo\n")
    assert "hypervisors.qemu.not_supported.FW-55: unknown clause; known: IMG-1" in msg
