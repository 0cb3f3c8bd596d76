"""Cost budgets for `vmconform check`: what one image may make it do, in proportion to the bytes the image
really occupies (its allocated size), so that no image costs more than about 1 s of CPU and 256 MiB of
memory per 64 MiB allocated.

A hostile image can make a naive FAT walk do work out of all proportion to its size: 10,000 nested
directories in 10 MB (paths of quadratic total length), directories chained into one shared looping
run (each read again and again), many files sharing one long cluster chain (each chain followed in
full). Each phase of the check (choosing the volume, walking the tree, finding and reading the boot
file) gets a fresh `Budget` of these `Limits`; spending past one raises `BudgetExceeded`, and the rule
that was being decided gets the verdict `error`, with evidence naming the budget and where it stopped.

The numbers per 64 MiB unit are about twice what a legitimate volume of that size needs (a FAT32 volume
of 64 MiB with 512-byte clusters has 131,072 clusters; a directory holds at most 65,536 entries), and
small enough that the three phases together stay near a second: a FAT link costs about 1.5 us, a
directory entry about 3 us on a 2-core machine.
"""

from __future__ import annotations

from dataclasses import dataclass

UNIT_BYTES = 64 << 20
"""The allocated size one unit of budget is granted for."""
ENTRIES_PER_UNIT = 131_072
"""32-byte directory entries parsed."""
CLUSTERS_PER_UNIT = 262_144
"""FAT links followed (cluster chain steps)."""
BYTES_PER_UNIT = 128 << 20
"""Bytes read from the volume for directories and files."""
MAX_DEPTH = 128
"""Directory depth: a path of at most 260 characters (fatgen103 §7) cannot hold more components."""
MAX_UNITS = 64
"""A ceiling however large the image: 64 units (4 GiB allocated) of walk at most."""

KINDS = {
    "entries": "directory entries",
    "clusters": "FAT links followed",
    "bytes": "bytes read",
}


@dataclass(frozen=True)
class Limits:
    """How much one phase of a check may spend."""

    entries: int
    clusters: int
    bytes: int
    depth: int
    units: int

    @classmethod
    def for_allocated(cls, allocated: int) -> Limits:
        """Limits for an image with `allocated` bytes on disk (at least one unit, at most MAX_UNITS)."""
        units = min(MAX_UNITS, max(1, -(-allocated // UNIT_BYTES)))
        return cls(ENTRIES_PER_UNIT * units, CLUSTERS_PER_UNIT * units, BYTES_PER_UNIT * units, MAX_DEPTH, units)

    def describe(self, kind: str) -> str:
        """The named budget with its size and what it is granted for, for evidence."""
        amount = {"entries": self.entries, "clusters": self.clusters, "bytes": self.bytes, "depth": self.depth}[kind]
        if kind == "depth":
            return f"the directory depth budget ({amount} levels)"
        size = f"{self.units * (UNIT_BYTES >> 20)} MiB"
        return f"the {KINDS[kind]} budget ({amount:,} for {size} allocated)"


class BudgetExceeded(Exception):
    """A phase spent past one of its limits. `kind` is entries / clusters / bytes / depth."""

    def __init__(self, kind: str, limits: Limits, where: str = "") -> None:
        self.kind = kind
        self.limits = limits
        self.where = where
        super().__init__(self.evidence)

    @property
    def evidence(self) -> str:
        at = f" at {self.where}" if self.where else ""
        return f"stopped by {self.limits.describe(self.kind)}{at}; not decided"


class Budget:
    """What one phase has spent against its `Limits` (mutable on purpose: a running count)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.entries = 0
        self.clusters = 0
        self.bytes = 0
        self.where = ""

    def fresh(self) -> Budget:
        """A new budget of the same limits, for the next phase."""
        return Budget(self.limits)

    def entry(self, n: int = 1) -> None:
        self.entries += n
        if self.entries > self.limits.entries:
            raise BudgetExceeded("entries", self.limits, self.where)

    def cluster(self, n: int = 1) -> None:
        self.clusters += n
        if self.clusters > self.limits.clusters:
            raise BudgetExceeded("clusters", self.limits, self.where)

    def read(self, n: int) -> None:
        self.bytes += n
        if self.bytes > self.limits.bytes:
            raise BudgetExceeded("bytes", self.limits, self.where)

    def depth(self, depth: int) -> None:
        if depth > self.limits.depth:
            raise BudgetExceeded("depth", self.limits, self.where)
