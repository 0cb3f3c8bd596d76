"""The structure-aware fuzzer (tests/fuzz_twists.py) in CI: a few hundred valid GPT/FAT32/PE trees with one
field or link twisted; `vmconform check` must never raise, stay within its read budget and exit 0/1
(and the command 0/1/2, never 3). bench/fuzz_check.py runs the same engine for minutes.
"""

from __future__ import annotations

from pathlib import Path

import fuzz_twists as fz
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmconform import cli
from vmconform.check import FAIL, PASS

twist = st.builds(
    fz.Twist,
    field=st.integers(0, 1 << 16),
    value=st.integers(0, 1 << 16),
    fix=st.booleans(),
    pe=st.booleans(),
)


def test_every_base_is_valid() -> None:
    fz.struct_sanity()
    for name in fz.BASES:
        img, _layout = fz.base(name)
        report = fz.run_case(img, name)
        assert all(r.verdict == PASS for r in report.rows), report.table()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(fz.BASES)), twists=st.lists(twist, min_size=1, max_size=2))
def test_twisted_trees_always_get_a_verdict(name: str, twists: list[fz.Twist]) -> None:
    img, what = fz.twisted(name, twists)
    fz.run_case(img, what)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(name=st.sampled_from(sorted(fz.BASES)), one=twist)
def test_the_command_exits_0_1_or_2_on_twisted_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, one: fz.Twist
) -> None:
    img, what = fz.twisted(name, [one])
    path = img.save(tmp_path / "twisted.img")
    status = cli.main(["check", str(path)])
    out = capsys.readouterr()
    assert status in (0, 1, 2), f"{status} on {what}: {out.err}"
    assert "internal error" not in out.err, what


@pytest.mark.parametrize(
    ("field", "value", "row"),
    [
        ("fat[", 2, "esp.fat.chains"),  # a FAT link back to the root: a loop or a cross-link
        ("gpt@1.entry_lba", (1 << 63) - 1, "gpt.primary.layout"),
        ("dirent[BOOTAA64.EFI].size", 0xFFFFFFFF, "esp.fat.chains"),
        ("lfn[BOOTAA64.EFI].ordinal", 0x02, None),
    ],
)
def test_single_twists_give_the_expected_row(field: str, value: int, row: str | None) -> None:
    """A few twists with known consequences, so the fuzzer's twists are known to land where they aim."""
    img, layout = fz.base("esp")
    target = next(f for f in layout.fields if f.name.startswith(field))
    img.write(target.offset, value.to_bytes(target.size, "little"))
    if field.startswith("gpt"):
        import hostile_fat as hf

        hf.fix_gpt_crcs(img, layout)
    report = fz.run_case(img, field)
    if row is None:  # the long name is gone, but the short name BOOTAA64.EFI still finds the file
        assert report.verdict("boot_file.present") == PASS
        assert "BOOTAA64.EFI" in next(r.evidence for r in report.rows if r.id == "boot_file.present")
    else:
        assert report.verdict(row) == FAIL, report.table()
