"""The Debian fetcher's pure parts: version ordering (deb-version(7)), suite sources, and input checks."""

from __future__ import annotations

import pytest

from vmconform.assets.cache import AssetError
from vmconform.assets.debian import SECURITY_MIRROR, Archive, Package, SuiteSources, compare_versions


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ("1.0", "1.0", 0),
        ("1.0~rc1", "1.0", -1),
        ("1.0", "1.0.1", -1),
        ("1:1.0", "2.0", 1),
        ("2023.01+dfsg-2+deb12u3", "2023.01+dfsg-2+deb12u2", 1),
        ("4.17.7+13-g2445b30a44-0+deb12u1", "4.17.3+10-g091466ba55-1~deb12u1", 1),
        ("1.0-1", "1.0-1~bpo12+1", 1),
        ("1.0a", "1.0", 1),
        ("1.0-10", "1.0-9", 1),
    ],
)
def test_versions_order_like_dpkg(a: str, b: str, want: int) -> None:
    assert compare_versions(a, b) == want
    assert compare_versions(b, a) == -want


def test_suite_sources() -> None:
    bookworm = SuiteSources.of("bookworm")
    assert [s for _, s in bookworm.entries] == ["bookworm", "bookworm-updates", "bookworm-security"]
    assert bookworm.entries[2][0] == SECURITY_MIRROR and bookworm.default_release is None
    bpo = SuiteSources.of("bookworm-backports")
    assert bpo.entries[-1][1] == "bookworm-backports" and bpo.default_release == "bookworm-backports"
    assert [s for _, s in SuiteSources.of("sid").entries] == ["sid"]


@pytest.mark.parametrize(("suite", "arch"), [("book worm", "arm64"), ("bookworm", "sparc")])
def test_bad_input_is_one_line(suite: str, arch: str) -> None:
    with pytest.raises(AssetError) as err:
        Archive(suite, arch)
    assert "\n" not in str(err.value)


def test_package_spec() -> None:
    p = Package("libc6", "2.36-9+deb12u4", "arm64")
    assert p.spec == "libc6=2.36-9+deb12u4" and str(p) == "libc6:arm64 2.36-9+deb12u4"
