"""The FAT tree walk of `vmconform check`: every directory and file below the root, with tree (loop) and
cluster-chain problems, at a cost bounded by the phase's `Budget` however the image is built.

Each cluster is claimed once by the directory or file whose chain reaches it first (`owner`), so a run
of clusters shared by many files or directories is followed once and reported as cross-linked; paths
are kept as (parent, name) links, never as full strings per entry, so 10,000 nested directories cost
memory in proportion to their count, not to the square of their depth; the depth itself is budgeted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from vmconform.check.budget import BudgetExceeded
from vmconform.check.fatfs import DirEntry, FatFs

MAX_PROBLEMS = 10
"""Problems kept per kind (the evidence shows three); the rest are only counted."""


@dataclass(frozen=True)
class TreeWalk:
    directories: int
    files: int
    tree_problems: tuple[str, ...]
    chain_problems: tuple[str, ...]
    more_problems: int
    stopped: str
    """Empty when the walk finished; else the evidence of the budget that stopped it."""


class _Walker:
    def __init__(self, fs: FatFs) -> None:
        self.fs = fs
        self.links: list[tuple[int, str]] = [(-1, "")]  # owner id -> (parent id, name); 0 is the root
        self.owner: dict[int, int] = {}
        self.tree: list[str] = []
        self.chains: list[str] = []
        self.more = 0
        self.directories = 0
        self.files = 0

    def path(self, oid: int) -> str:
        parts: list[str] = []
        while oid > 0 and len(parts) < 4096:
            oid, name = self.links[oid]
            parts.append(name)
        return "\\" + "\\".join(reversed(parts))

    def problem(self, into: list[str], text: str) -> None:
        if len(into) < MAX_PROBLEMS:
            into.append(text)
        else:
            self.more += 1

    def _cross(self, problem: str, other: int) -> str:
        return f"{problem} {self.path(other)} (cross-linked)" if other >= 0 else problem

    def run(self) -> str:
        fs = self.fs
        root_key = fs.bpb.root_cluster if fs.bpb.structure == 32 else 0
        visited: dict[int, int] = {root_key: 0}
        queue: deque[tuple[int, int | None, int]] = deque([(0, None, 0)])
        try:
            while queue:
                me, cluster, depth = queue.popleft()
                fs.budget.where = self.path(me)
                raw, problem, other = fs.dir_raw(cluster, self.owner, me)
                if problem:
                    self.problem(self.chains, f"directory {self.path(me)}: {self._cross(problem, other)}")
                for entry in fs.parse_dir(raw):
                    if entry.short in (".", ".."):
                        continue
                    oid = len(self.links)
                    self.links.append((me, entry.name))
                    if entry.is_dir:
                        self._directory(entry, oid, depth + 1, visited, queue)
                    else:
                        self.files += 1
                        self._file(entry, oid)
        except BudgetExceeded as e:
            return e.evidence
        return ""

    def _directory(
        self, entry: DirEntry, oid: int, depth: int, visited: dict[int, int], queue: deque[tuple[int, int | None, int]]
    ) -> None:
        key = entry.first_cluster
        if key == 0 or key in visited:
            target = self.path(visited.get(key, 0))
            self.problem(self.tree, f"{self.path(oid)} points at cluster {key}, already {target}: a loop")
            return
        if not self.fs.in_range(key):
            self.problem(self.chains, f"directory {self.path(oid)}: first cluster {key} outside the volume")
            return
        self.fs.budget.where = self.path(oid)
        self.fs.budget.depth(depth)
        visited[key] = oid
        self.directories += 1
        queue.append((oid, key, depth))

    def _file(self, entry: DirEntry, oid: int) -> None:
        fs = self.fs
        need = -(-entry.size // fs.bpb.cluster_bytes)
        if need == 0:
            if entry.first_cluster != 0 and not fs.in_range(entry.first_cluster):
                self.problem(self.chains, f"{self.path(oid)}: empty file with first cluster {entry.first_cluster}")
            return
        clusters, problem, other = fs.chain(entry.first_cluster, need + 1, self.owner, oid)
        if problem:
            self.problem(self.chains, f"{self.path(oid)}: chain {self._cross(problem, other)}")
        elif len(clusters) < need:
            self.problem(
                self.chains, f"{self.path(oid)}: {entry.size} bytes need {need} clusters, the chain has {len(clusters)}"
            )
        elif len(clusters) > need:
            self.problem(
                self.chains, f"{self.path(oid)}: the chain is longer than the {need} clusters {entry.size} bytes need"
            )


def walk(fs: FatFs) -> TreeWalk:
    """Walk the whole tree of `fs`, charging `fs.budget`; always terminates, within the budget."""
    walker = _Walker(fs)
    stopped = walker.run()
    return TreeWalk(walker.directories, walker.files, tuple(walker.tree), tuple(walker.chains), walker.more, stopped)
