"""The asset cache's plumbing: where it is, keys, complete-or-absent slots, one-line missing-tool errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmconform.assets import cache
from vmconform.assets.cache import MissingTool, digest, need, slot


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VMCONFORM_CACHE", str(tmp_path / "explicit"))
    assert cache.cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("VMCONFORM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg/vmconform"


def test_digest_separates_parts(tmp_path: Path) -> None:
    assert digest(["ab", "c"]) != digest(["a", "bc"])
    f = tmp_path / "p.patch"
    f.write_text("x")
    before = digest([f])
    f.write_text("y")
    assert digest([f]) != before


def test_slot_is_complete_or_absent(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VMCONFORM_CACHE", str(tmp_path))
    old = slot("kind", "1" * 64)
    with old.build() as out:
        (out / "a").write_text("old")
    s = slot("kind", "2" * 64)
    with pytest.raises(RuntimeError), s.build() as out:
        (out / "a").write_text("half")
        raise RuntimeError("build failed")
    assert not s.ready and not s.path.exists() and old.ready
    with s.build() as out:
        (out / "a").write_text("new")
    assert s.ready and (s.path / "a").read_text() == "new"
    assert not old.path.exists(), "a completed build prunes the stale key of its kind"


def test_missing_tool_is_one_line_with_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache.shutil, "which", lambda _: None)
    monkeypatch.setattr(cache.os, "geteuid", lambda: 1000)
    with pytest.raises(MissingTool) as err:
        need("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")
    assert str(err.value) == (
        "aarch64-linux-gnu-gcc is missing: install it with `apt-get install gcc-aarch64-linux-gnu` (as root)"
    )
