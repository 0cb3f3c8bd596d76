"""Debian packages of any suite and architecture, fetched without touching the system's apt.

`Archive(suite, arch)` is a private apt root in the cache (``<cache>/debian/<suite>-<arch>/``): its own
sources list (signed by /usr/share/keyrings/debian-archive-keyring.gpg), package lists, dpkg status
(empty: nothing counts as installed) and download cache, all passed to apt-get with ``-o`` options, so
the host's sources, pins and installed packages are never read or changed and no root is needed.
Dependency closures come from apt's own resolver (``apt-get install -s`` against the empty status), so
they are exactly what apt would install on a fresh system of that suite and architecture.

Use::

    arc = Archive("bookworm", "arm64")
    pkgs = arc.resolve(["xen-utils-4.17", "bash"])     # the closure, with versions
    debs = arc.download(pkgs)                          # cached .deb files
    unpack(debs, Path("root"))                         # dpkg -x each
    src = arc.source("u-boot", Path("src"))            # apt-get source + dpkg-source -x

Suites: a release name (bookworm, trixie) brings its -updates and -security suites; ``sid`` is alone;
``<release>-backports`` adds backports to its release and prefers it (APT::Default-Release).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vmconform.assets.cache import AssetError, cache_dir, locked, need, run

MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
ARCHES = ("arm64", "armhf", "amd64", "armel", "i386", "riscv64")
LIST_MAX_AGE_S = 24 * 3600
"""Package lists older than this are refreshed before use (an explicit `update(force=True)` always)."""


@dataclass(frozen=True)
class Package:
    """A binary package at one version for one architecture, as the archive offers it."""

    name: str
    version: str
    arch: str

    @property
    def spec(self) -> str:
        """``name=version``, what apt-get download takes to fetch exactly this one."""
        return f"{self.name}={self.version}"

    def __str__(self) -> str:
        return f"{self.name}:{self.arch} {self.version}"


@dataclass(frozen=True)
class SuiteSources:
    """The apt sources of a suite name: (mirror, suite) pairs, and the release apt should prefer."""

    entries: tuple[tuple[str, str], ...]
    default_release: str | None

    @staticmethod
    def of(suite: str) -> SuiteSources:
        if not re.fullmatch(r"[a-z]+(-backports)?", suite):
            raise AssetError(f"unknown Debian suite {suite!r}: give e.g. bookworm, trixie, sid, bookworm-backports")
        if suite in ("sid", "unstable"):
            return SuiteSources(((MIRROR, "sid"),), None)
        release, _, extra = suite.partition("-")
        entries = [(MIRROR, release), (MIRROR, f"{release}-updates"), (SECURITY_MIRROR, f"{release}-security")]
        if extra:
            entries.append((MIRROR, suite))
        return SuiteSources(tuple(entries), suite if extra else None)


class Archive:
    """A private apt root for one Debian suite and architecture (see the module docstring)."""

    def __init__(self, suite: str, arch: str, *, components: Sequence[str] = ("main",), root: Path | None = None):
        if arch not in ARCHES:
            raise AssetError(f"unknown Debian architecture {arch!r}: give one of {', '.join(ARCHES)}")
        self.suite = suite
        self.arch = arch
        self.sources = SuiteSources.of(suite)
        self.components = tuple(components)
        self.root = root or cache_dir() / "debian" / f"{suite}-{arch}"
        self.debs = self.root / "debs"
        self._ready = False

    def __repr__(self) -> str:
        return f"Archive({self.suite!r}, {self.arch!r})"

    # -- apt plumbing -------------------------------------------------------------------------------

    def _setup(self) -> None:
        if self._ready:
            return
        need("apt-get", "apt")
        if not KEYRING.exists():
            need("gpgv", "debian-archive-keyring")
            if not KEYRING.exists():
                raise AssetError(f"{KEYRING} is missing: install it with `apt-get install debian-archive-keyring`")
        for d in ("lists/partial", "cache/archives/partial", "debs", "src", "etc"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        comps = " ".join(self.components)
        lines = [
            f"{kind} [signed-by={KEYRING}] {mirror} {suite} {comps}"
            for mirror, suite in self.sources.entries
            for kind in ("deb", "deb-src")
        ]
        text = "\n".join(lines) + "\n"
        listing = self.root / "etc" / "sources.list"
        if not listing.exists() or listing.read_text() != text:
            listing.write_text(text)
            (self.root / "lists" / ".updated").unlink(missing_ok=True)
        (self.root / "status").touch()
        self._ready = True

    def _apt(self, tool: str, *args: str, cwd: Path | None = None) -> str:
        r = self.root
        opts = {
            "Dir::Etc::SourceList": r / "etc" / "sources.list",
            "Dir::Etc::SourceParts": "/dev/null",
            "Dir::Etc::Preferences": "/dev/null",
            "Dir::Etc::PreferencesParts": "/dev/null",
            "Dir::State": r,
            "Dir::State::Lists": r / "lists",
            "Dir::State::status": r / "status",
            "Dir::State::extended_states": r / "extended_states",
            "Dir::Cache": r / "cache",
            "APT::Architecture": self.arch,
            "APT::Architectures": self.arch,
            "APT::Install-Recommends": "false",
            "APT::Get::List-Cleanup": "true",
            "Acquire::Languages": "none",
            "Debug::NoLocking": "true",
        }
        if self.sources.default_release:
            opts["APT::Default-Release"] = self.sources.default_release
        argv: list[str] = [tool]
        for k, v in opts.items():
            argv += ["-o", f"{k}={v}"]
        what = f"{tool} {' '.join(a for a in args if not a.startswith('-'))} ({self.suite}/{self.arch})"
        return run([*argv, *args], cwd=cwd, what=what)

    def update(self, *, force: bool = False) -> None:
        """Fetch the suite's package lists when missing, older than a day, or when `force`d."""
        self._setup()
        stamp = self.root / "lists" / ".updated"
        with locked(self.root / "lock"):
            fresh = stamp.exists() and time.time() - stamp.stat().st_mtime < LIST_MAX_AGE_S
            if fresh and not force:
                return
            try:
                self._apt("apt-get", "update", "-q")
            except AssetError:
                # offline with lists from an earlier update: keep using them (versions, hence cache keys,
                # stay what they were); with no lists at all there is nothing to go on
                if not stamp.exists() or force:
                    raise
                return
            stamp.touch()

    # -- queries -------------------------------------------------------------------------------------

    def version(self, name: str) -> str:
        """The candidate version of binary package `name` (what a fresh install would get)."""
        self.update()
        out = self._apt("apt-cache", "policy", name)
        m = re.search(r"^\s*Candidate:\s*(\S+)", out, re.M)
        if not m or m.group(1) == "(none)":
            raise AssetError(f"{self.suite}/{self.arch} has no package {name!r}")
        return m.group(1)

    def depends(self, name: str) -> tuple[str, ...]:
        """The package names in `name`'s Depends field (alternatives and versions dropped)."""
        self.update()
        out = self._apt(
            "apt-cache",
            "depends",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
            name,
        )
        return tuple(dict.fromkeys(re.findall(r"^\s*\|?Depends:\s*<?([^\s>:]+)", out, re.M)))

    def resolve(self, names: Iterable[str], *, closure: bool = True) -> tuple[Package, ...]:
        """The packages `names` at their candidate versions, with their dependency closure when `closure`.

        The closure is what ``apt-get install --no-install-recommends`` would install on an empty system
        (apt's own resolver, simulated), sorted by name.
        """
        names = list(names)
        if not closure:
            return tuple(sorted((Package(n, self.version(n), self.arch) for n in names), key=lambda p: p.name))
        self.update()
        out = self._apt("apt-get", "install", "-s", "-q", "--no-install-recommends", *names)
        found = {
            m.group(1).split(":")[0]: Package(m.group(1).split(":")[0], m.group(2), self.arch)
            for m in re.finditer(r"^Inst (\S+) \((\S+) ", out, re.M)
        }
        if not found:
            raise AssetError(f"apt resolved nothing for {' '.join(names)} in {self.suite}/{self.arch}")
        return tuple(sorted(found.values(), key=lambda p: p.name))

    # -- fetching ------------------------------------------------------------------------------------

    def download(self, packages: Iterable[Package | str]) -> tuple[Path, ...]:
        """The .deb files of `packages` (names mean the candidate version), downloaded once into the cache."""
        pkgs = [p if isinstance(p, Package) else Package(p, self.version(p), self.arch) for p in packages]
        self.update()
        with locked(self.root / "lock"):
            missing = [p for p in pkgs if self._deb(p) is None]
            if missing:
                self._apt("apt-get", "download", "-q", *(p.spec for p in missing), cwd=self.debs)
            paths = []
            for p in pkgs:
                path = self._deb(p)
                if path is None:
                    raise AssetError(f"apt-get download gave no .deb for {p}")
                paths.append(path)
        return tuple(paths)

    def _deb(self, p: Package) -> Path | None:
        # apt-get download names files name_version_arch.deb with ':' in the version escaped as %3a
        version = p.version.replace(":", "%3a")
        for arch in (p.arch, "all"):
            path = self.debs / f"{p.name}_{version}_{arch}.deb"
            if path.exists():
                return path
        return None

    def source_version(self, name: str) -> str:
        """The version of source package `name` that ``apt-get source`` would fetch."""
        self.update()
        out = self._apt("apt-cache", "showsrc", "--only-source", name)
        versions: list[str] = re.findall(r"^Version:\s*(\S+)", out, re.M)
        if not versions:
            raise AssetError(f"{self.suite} has no source package {name!r}")
        best: str = max(versions, key=_VersionKey)
        return best

    def source(self, name: str, dest: Path) -> Path:
        """Source package `name` (its newest version) unpacked with dpkg-source into a new folder under `dest`.

        The downloaded files stay in the cache; the returned folder is ``dest/<name>-<upstream version>``
        and is replaced if it exists.
        """
        need("dpkg-source", "dpkg-dev")
        version = self.source_version(name)
        store = self.root / "src" / f"{name}_{version.replace(':', '%3a')}"
        with locked(self.root / "lock"):
            dscs = list(store.glob("*.dsc"))
            if not dscs:
                tmp = store.with_name(store.name + ".part")
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                self._apt("apt-get", "source", "--download-only", "-q", "--only-source", f"{name}={version}", cwd=tmp)
                shutil.rmtree(store, ignore_errors=True)
                tmp.rename(store)
                dscs = list(store.glob("*.dsc"))
            if len(dscs) != 1:
                raise AssetError(f"apt-get source {name}={version} gave {len(dscs)} .dsc files in {store}")
        upstream = version.split(":")[-1].rsplit("-", 1)[0]
        out = dest / f"{name}-{upstream}"
        shutil.rmtree(out, ignore_errors=True)
        dest.mkdir(parents=True, exist_ok=True)
        run(["dpkg-source", "--no-check", "-x", dscs[0], out])
        return out


def unpack(debs: Iterable[Path], dest: Path) -> Path:
    """``dpkg -x`` every deb into `dest` (created); later debs overwrite earlier files. Returns `dest`."""
    need("dpkg-deb", "dpkg")
    dest.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        run(["dpkg-deb", "-x", deb, dest])
    return dest


class _VersionKey:
    """Orders Debian version strings (deb-version(7)): epoch, then upstream and revision compared piecewise."""

    def __init__(self, version: str) -> None:
        epoch, _, rest = version.rpartition(":") if ":" in version else ("0", "", version)
        upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
        self.parts = (int(epoch or 0), _split(upstream), _split(revision))

    def __lt__(self, other: _VersionKey) -> bool:
        a, b = self.parts, other.parts
        return (a[0], *_padded(a[1], b[1]), *_padded(a[2], b[2])) < (b[0], *_padded(b[1], a[1]), *_padded(b[2], a[2]))


_EMPTY_PART = ((0,), 0)


def _padded(parts: tuple[tuple[tuple[int, ...], int], ...], other: tuple[object, ...]) -> tuple[object, ...]:
    # a missing trailing part compares as an empty string and 0 (so 1.0~rc1 < 1.0 < 1.0.1)
    return (*parts, *[_EMPTY_PART] * (len(other) - len(parts)))


def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _split(s: str) -> tuple[tuple[tuple[int, ...], int], ...]:
    out = []
    for alpha, digits in re.findall(r"([^0-9]*)([0-9]*)", s):
        if not alpha and not digits:
            continue
        out.append((tuple(_order(c) for c in alpha) + (0,), int(digits or 0)))
    return tuple(out)


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as Debian version `a` is older than, equal to, or newer than `b`."""
    ka, kb = _VersionKey(a), _VersionKey(b)
    return -1 if ka < kb else (1 if kb < ka else 0)
