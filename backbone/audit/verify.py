"""`backbone audit verify`: recompute each partition's leaves from the log and say, per
partition, which records were altered, removed, reordered or inserted since the auditor
signed them.

Trust flows from the signatures down:
1. each checkpoint must verify with the auditor's public key (others are reported and
   ignored), and two checkpoints of one size must have one root (else the auditor was
   made to sign a fork);
2. the auditor's stored leaf hashes must reproduce every checkpoint's root (and last
   offset): then they are exactly what was signed, and consistency between all those
   checkpoints holds;
3. the log's records are hashed again and aligned with the signed leaves: every
   difference is named with the offset it had when it was signed and the offset it has in
   what was read (these differ after a removal or an insertion, or in a copy of a topic).

If the stored leaves do not reproduce a checkpoint (Cassandra's copy was altered or lost),
verify falls back to the checkpoints alone: their roots still bound where the log first
differs, to the records between two checkpoints.
"""

from __future__ import annotations

import asyncio
import difflib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from backbone.audit.checkpoints import Checkpoint, CheckpointError, TreeHead, Verifier
from backbone.audit.leaves import record_leaf
from backbone.audit.logread import log_bounds, read_partition
from backbone.audit.merkle import CompactTree
from backbone.audit.store import AuditStore

# Kinds of finding. The first five mean the log (or the audit evidence) was tampered with.
ALTERED = "altered"
REMOVED = "removed"
REORDERED = "reordered"
INSERTED = "inserted"
DIFFERS = "differs"  # checkpoint-only: somewhere in a range of offsets
TRUNCATED = "truncated"  # fewer records than a checkpoint signed
FORK = "fork"  # two signed roots for one size
BAD_CHECKPOINT = "checkpoint-rejected"  # signature does not verify: ignored
BAD_LEAVES = "stored-leaves-mismatch"  # Cassandra's leaf hashes do not match a signature
EXPIRED = "expired"  # removed by retention (reading the audited topic itself): not tampering
UNCOVERED = "uncovered"  # appended after the last checkpoint: not yet signed

TAMPERING = {ALTERED, REMOVED, REORDERED, INSERTED, DIFFERS, TRUNCATED, FORK, BAD_LEAVES}


@dataclass(frozen=True)
class Finding:
    kind: str
    signed_offset: int | None  # where the record was when the auditor signed it
    read_offset: int | None  # where it is in what was read now
    detail: str = ""

    def line(self) -> str:
        where = []
        if self.signed_offset is not None:
            where.append(f"signed at offset {self.signed_offset}")
        if self.read_offset is not None:
            where.append(f"now at offset {self.read_offset}")
        text = f"{self.kind:<12} {', '.join(where)}"
        return f"{text}  {self.detail}".rstrip()


@dataclass
class PartitionReport:
    topic: str
    partition: int
    read_topic: str
    records_read: int = 0
    signed_size: int = 0  # the latest valid checkpoint's size
    checkpoints: int = 0
    mode: str = "leaves"  # "leaves" (exact) or "checkpoints" (bounded)
    findings: list[Finding] = field(default_factory=list)

    @property
    def tampered(self) -> bool:
        return any(f.kind in TAMPERING for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tampered"] = self.tampered
        return d


def valid_heads(
    checkpoints: Iterable[Checkpoint | str], verifier: Verifier, report: PartitionReport
) -> list[TreeHead]:
    """The signed heads of the report's partition, ascending by size; rejected ones and
    forks are recorded in the report."""
    heads: dict[int, TreeHead] = {}
    for cp in checkpoints:
        if isinstance(cp, str):
            report.findings.append(Finding(BAD_CHECKPOINT, None, None, cp))
            continue
        if (cp.head.topic, cp.head.partition) != (report.topic, report.partition):
            continue  # another partition's (a file or the topic holds them all)
        try:
            head = verifier.check(cp)
        except CheckpointError as exc:
            detail = f"size {cp.head.size}: {exc}"
            report.findings.append(Finding(BAD_CHECKPOINT, None, None, detail))
            continue
        seen = heads.get(head.size)
        if seen is not None and (seen.root, seen.last_offset) != (head.root, head.last_offset):
            detail = f"size {head.size} signed with roots {seen.root.hex()} and {head.root.hex()}"
            report.findings.append(Finding(FORK, None, None, detail))
            continue
        heads[head.size] = head
    out = [heads[s] for s in sorted(heads)]
    report.checkpoints = len(out)
    report.signed_size = out[-1].size if out else 0
    return out


def trusted_prefix(
    leaves: Sequence[tuple[int, bytes]], heads: Sequence[TreeHead], report: PartitionReport
) -> int:
    """How many stored leaves reproduce every signed head up to them: 0 if the first head
    already fails, else the size of the last head they reproduce."""
    tree = CompactTree()
    good = 0
    for head in heads:
        if head.size > len(leaves):
            detail = f"{len(leaves)} leaf hashes stored, checkpoint signed {head.size}"
            report.findings.append(Finding(BAD_LEAVES, None, None, detail))
            return good
        while tree.size < head.size:
            tree.append(leaves[tree.size][1])
        last = leaves[head.size - 1][0] if head.size else -1
        if tree.root() != head.root or last != head.last_offset:
            detail = f"stored leaf hashes do not give the root signed for size {head.size}"
            report.findings.append(Finding(BAD_LEAVES, None, None, detail))
            return good
        good = head.size
    return good


def compare(
    signed: Sequence[tuple[int, bytes]], read: Sequence[tuple[int, bytes]]
) -> list[Finding]:
    """Aligns the signed leaves (offset, hash) with the leaves read from the log and names
    each difference. Records read after the last signed one are `uncovered`."""
    a = [h for _, h in signed]
    b = [h for _, h in read]
    # The common case is an untouched log: skip the equal head and tail before aligning,
    # which also keeps the alignment's cost to the part that differs.
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    if head == len(a) == len(b):
        return []
    matcher = difflib.SequenceMatcher(
        None, a[head : len(a) - tail], b[head : len(b) - tail], autojunk=False
    )
    blocks: list[tuple[str, list[int], list[int]]] = []
    uncovered: list[int] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        g, n = list(range(head + i1, head + i2)), list(range(head + j1, head + j2))
        if tag == "insert" and head + i1 == len(a):
            # Read after the last signed leaf: appends the auditor has not signed yet, not
            # insertions (a forged record there is caught by the next checkpoint).
            uncovered = n
        elif tag != "equal":
            blocks.append((tag, g, n))
    # A record that left one place and appears at another was moved (two swapped records
    # show as one moved past the other).
    new_by_hash: dict[bytes, list[int]] = defaultdict(list)
    for _, _, n in blocks:
        for j in n:
            new_by_hash[b[j]].append(j)
    moved: dict[int, int] = {}
    for _, g, _ in blocks:
        for i in g:
            places = new_by_hash.get(a[i])
            if places:
                moved[i] = places.pop(0)
    moved_to = set(moved.values())
    findings = [
        Finding(REORDERED, signed[i][0], read[j][0], f"leaf {i} is read record {j}")
        for i, j in moved.items()
    ]
    for kind, was, now in blocks:
        left = [i for i in was if i not in moved]
        came = [j for j in now if j not in moved_to]
        # Within one replaced stretch, the k-th signed record left and the k-th read one
        # in its place: one record altered.
        pairs = min(len(left), len(came)) if kind == "replace" else 0
        for i, j in zip(left[:pairs], came[:pairs], strict=True):
            findings.append(Finding(ALTERED, signed[i][0], read[j][0], f"leaf {i}"))
        findings += [Finding(REMOVED, signed[i][0], None, f"leaf {i}") for i in left[pairs:]]
        findings += [Finding(INSERTED, None, read[j][0], f"read record {j}") for j in came[pairs:]]
    findings += [
        Finding(UNCOVERED, None, read[j][0], "appended after the last checkpoint")
        for j in uncovered
    ]
    return sorted(findings, key=_order)


def _order(f: Finding) -> tuple[int, int]:
    return (
        f.signed_offset if f.signed_offset is not None else 1 << 62,
        f.read_offset if f.read_offset is not None else 1 << 62,
    )


# --- reading the log and the evidence ---------------------------------------------------


async def verify_partition(
    bootstrap: str,
    store: AuditStore | None,
    topic: str,
    partition: int,
    verifier: Verifier,
    read_topic: str | None = None,
    checkpoints: Sequence[Checkpoint | str] | None = None,
) -> PartitionReport:
    """Verifies one partition. `read_topic`: read the records from this topic instead (a
    copy, a mirror, a restored backup) and check them against the audited topic's
    evidence. `checkpoints`: use these (say, a file kept elsewhere) instead of the store's."""
    read_topic = read_topic or topic
    report = PartitionReport(topic, partition, read_topic)
    if checkpoints is None:
        checkpoints = (
            await asyncio.to_thread(lambda: list(store.checkpoints(topic, partition)))
            if store is not None
            else []
        )
    heads = valid_heads(checkpoints, verifier, report)
    read = [
        (r.offset, record_leaf(r.key, r.value))
        async for r in read_partition(bootstrap, read_topic, partition)
    ]
    report.records_read = len(read)
    if not heads:
        if read:
            report.findings.append(
                Finding(UNCOVERED, None, read[0][0], f"{len(read)} records, no checkpoint yet")
            )
        return report
    signed_size = heads[-1].size
    leaves: list[tuple[int, bytes]] = []
    if store is not None:
        leaves = await asyncio.to_thread(store.load_leaves, topic, partition, signed_size)
    good = trusted_prefix(leaves, heads, report) if leaves else 0
    if good == signed_size:
        signed = leaves[:signed_size]
        if read_topic == topic and signed:
            start, _ = await log_bounds(bootstrap, topic, partition)
            gone = sum(1 for offset, _ in signed if offset < start)
            if gone:
                detail = f"{gone} signed records before offset {start} left by retention"
                report.findings.append(Finding(EXPIRED, signed[0][0], None, detail))
                signed = signed[gone:]
        findings = compare(signed, read)
    else:
        report.mode = "checkpoints"
        findings = _against_roots(heads, read)
    report.findings += _summarise_uncovered(findings)
    return report


def _against_roots(heads: Sequence[TreeHead], read: Sequence[tuple[int, bytes]]) -> list[Finding]:
    """Without trusted leaf hashes: the first checkpoint whose root the log no longer
    gives bounds the first difference to the records since the one before it."""
    tree = CompactTree()
    before = 0
    findings: list[Finding] = []
    for head in heads:
        if head.size > len(read):
            detail = f"{len(read)} records read, {head.size} signed"
            return [Finding(TRUNCATED, head.last_offset, None, detail)]
        while tree.size < head.size:
            tree.append(read[tree.size][1])
        if tree.root() != head.root:
            first, last = read[before][0], read[head.size - 1][0]
            detail = (
                f"first difference among read records {before}..{head.size - 1} "
                f"(offsets {first}..{last}); signed size {head.size}"
            )
            return [Finding(DIFFERS, head.last_offset, first, detail)]
        before = head.size
    findings += [
        Finding(UNCOVERED, None, offset, "appended after the last checkpoint")
        for offset, _ in read[heads[-1].size :]
    ]
    return findings


def _summarise_uncovered(findings: list[Finding]) -> list[Finding]:
    """One line for the records not yet signed, not one per record."""
    uncovered = [f for f in findings if f.kind == UNCOVERED]
    rest = [f for f in findings if f.kind != UNCOVERED]
    if uncovered:
        first = uncovered[0].read_offset
        detail = f"{len(uncovered)} records from offset {first} not signed yet"
        rest.append(Finding(UNCOVERED, None, first, detail))
    return rest


def format_report(report: PartitionReport) -> str:
    status = "TAMPERED" if report.tampered else "ok"
    source = "" if report.read_topic == report.topic else f" (read from {report.read_topic})"
    lines = [
        f"{report.topic}/{report.partition}{source}: {status}  {report.records_read} records "
        f"read, {report.signed_size} signed in {report.checkpoints} checkpoints"
        + ("" if report.mode == "leaves" else "  [checkpoint roots only]")
    ]
    lines += [f"  {f.line()}" for f in report.findings]
    return "\n".join(lines)
