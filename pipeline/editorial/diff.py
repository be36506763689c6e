"""Change lists: how each shot changed between two revisions of the cut.

Per shot, one or more of:

- `added` (never in an earlier revision), `reinstated` (in an earlier one, not the previous),
  `omitted` (in the previous, not this one);
- `head_trimmed` / `head_extended` and `tail_trimmed` / `tail_extended` by N frames: the
  shot's cut range moved at that end, in shot frames (a slip trims one end and extends the
  other);
- `source_changed`: a different take or reel was cut in. Shot frames follow the media,
  so a new source is not a trim and no head/tail change is claimed for it;
- `retime_changed`: a speed or freeze was added, changed or removed;
- `moved`: the shot changed places relative to the other shots. The moved shots are the
  fewest that explain the new order (those outside a longest run kept in order), so one
  shot moved to the end is one move, not a shift of everything after it;
- `uses_changed`: the shot is used a different number of times (a repeated shot);
- `unchanged`: none of the above.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, NamedTuple

from backlot.tracker.records import _Record

ADDED, REINSTATED, OMITTED = "added", "reinstated", "omitted"
HEAD_TRIMMED, HEAD_EXTENDED, TAIL_TRIMMED, TAIL_EXTENDED = "head_trimmed", "head_extended", "tail_trimmed", "tail_extended"
SOURCE_CHANGED, RETIME_CHANGED, MOVED, USES_CHANGED, UNCHANGED = (
    "source_changed", "retime_changed", "moved", "uses_changed", "unchanged")
KIND_ORDER = (ADDED, REINSTATED, OMITTED, SOURCE_CHANGED, HEAD_TRIMMED, HEAD_EXTENDED, TAIL_TRIMMED,
              TAIL_EXTENDED, RETIME_CHANGED, MOVED, USES_CHANGED, UNCHANGED)


class ShotUse(NamedTuple):  # a named tuple: thousands are made per import, cheaply
    """One use of a shot in a revision (a shot cut in twice has two)."""

    position: int  # the item's place in the revision
    source: str  # reel, media or clip name: what was cut in
    retime: str  # "100%", "50%", "freeze"
    cut_in: int  # shot frames needed by this use, inclusive
    cut_out_incl: int


class ShotCut(NamedTuple):
    """A shot's state in one revision: its range over all its uses, and its place."""

    code: str
    order: int  # rank among the revision's shots, by first appearance, from 1
    cut_in: int
    cut_out_incl: int
    uses: tuple[ShotUse, ...]

    @property
    def sources(self) -> frozenset[str]:
        return frozenset(u.source for u in self.uses)

    @property
    def retimes(self) -> tuple[str, ...]:
        return tuple(u.retime for u in self.uses)


@dataclass  # not frozen: an import makes one per shot, and frozen fields are set the slow way
class ShotChange(_Record):
    shot: str
    kinds: tuple[str, ...]
    old_cut_in: int | None = None
    old_cut_out_incl: int | None = None
    new_cut_in: int | None = None
    new_cut_out_incl: int | None = None
    old_position: int | None = None  # the shot's rank among shots in the previous revision
    new_position: int | None = None
    head: int = 0  # frames gained at the head (negative: trimmed)
    tail: int = 0  # frames gained at the tail (negative: trimmed)
    needs_render: bool | None = None  # production impact; None when unknown or omitted
    detail: dict[str, Any] = field(default_factory=dict)

    def explain(self) -> str:
        """One line a person can check against the two cuts."""
        parts = []
        for kind in self.kinds:
            if kind in (HEAD_TRIMMED, HEAD_EXTENDED):
                parts.append(f"head {'extended' if self.head > 0 else 'trimmed'} by {abs(self.head)}")
            elif kind in (TAIL_TRIMMED, TAIL_EXTENDED):
                parts.append(f"tail {'extended' if self.tail > 0 else 'trimmed'} by {abs(self.tail)}")
            elif kind == MOVED:
                parts.append(f"moved from {self.old_position} to {self.new_position}")
            elif kind == SOURCE_CHANGED:
                old, new = self.detail.get("old_sources"), self.detail.get("new_sources")
                parts.append(f"source changed ({', '.join(old or [])} -> {', '.join(new or [])})")
            elif kind == RETIME_CHANGED:
                parts.append(f"retime {'/'.join(self.detail.get('old_retimes', []))} -> "
                             f"{'/'.join(self.detail.get('new_retimes', []))}")
            elif kind == USES_CHANGED:
                parts.append(f"used {self.detail.get('old_uses')}x -> {self.detail.get('new_uses')}x")
            else:
                parts.append(kind)
        impact = self.detail.get("impact") or {}
        if self.needs_render:
            parts.append(f"needs render: {impact.get('why', 'frames outside the current version')}")
        return ", ".join(parts)


def with_impact(change: ShotChange, impact: Any) -> ShotChange:
    """`change` with its production impact (a shot_versions.Impact); the constructor, not
    dataclasses.replace, which costs several times more over thousands of shots."""
    c = change
    return ShotChange(c.shot, c.kinds, c.old_cut_in, c.old_cut_out_incl, c.new_cut_in, c.new_cut_out_incl,
                      c.old_position, c.new_position, c.head, c.tail, impact.needs_render,
                      {**c.detail, "impact": impact.to_dict()})


def diff_cuts(old: dict[str, ShotCut], new: dict[str, ShotCut], seen_before: Iterable[str] = (),
              impact: Callable[[str], Any] | None = None) -> list[ShotChange]:
    """The change list from `old` to `new` (shots by code): this revision's shots in order, then the omitted.

    `impact`, when given, is each shot of the new revision's production impact (by code; a
    shot_versions.Impact or None), added as `with_impact` would, in one pass.
    """
    earlier = set(seen_before)
    moved = _moved(old, new)
    changes = [_compare(old.get(code), cut, code in moved, code in earlier, impact)
               for code, cut in sorted(new.items(), key=lambda kv: kv[1].order)]
    changes += [ShotChange(code, (OMITTED,), cut.cut_in, cut.cut_out_incl, old_position=cut.order)
                for code, cut in sorted(old.items(), key=lambda kv: kv[1].order) if code not in new]
    return changes


def _compare(before: ShotCut | None, after: ShotCut, moved: bool, seen: bool,
             impact: Callable[[str], Any] | None) -> ShotChange:
    found = impact(after.code) if impact is not None else None
    needs_render = found.needs_render if found is not None else None
    if before is None:
        return ShotChange(after.code, (REINSTATED if seen else ADDED,), new_cut_in=after.cut_in,
                          new_cut_out_incl=after.cut_out_incl, new_position=after.order, needs_render=needs_render,
                          detail={"impact": found.to_dict()} if found is not None else {})
    kinds: list[str] = []
    detail: dict[str, Any] = {}
    head = tail = 0
    single = len(before.uses) == 1 == len(after.uses)  # most shots: compare the uses, not sets of them
    if (before.uses[0].source != after.uses[0].source) if single else before.sources != after.sources:
        kinds.append(SOURCE_CHANGED)
        detail.update(old_sources=sorted(before.sources), new_sources=sorted(after.sources))
    else:
        head, tail = before.cut_in - after.cut_in, after.cut_out_incl - before.cut_out_incl
        if head:
            kinds.append(HEAD_EXTENDED if head > 0 else HEAD_TRIMMED)
        if tail:
            kinds.append(TAIL_EXTENDED if tail > 0 else TAIL_TRIMMED)
    if (before.uses[0].retime != after.uses[0].retime) if single else set(before.retimes) != set(after.retimes):
        kinds.append(RETIME_CHANGED)
        detail.update(old_retimes=sorted(set(before.retimes)), new_retimes=sorted(set(after.retimes)))
    if moved:
        kinds.append(MOVED)
    if len(before.uses) != len(after.uses):
        kinds.append(USES_CHANGED)
        detail.update(old_uses=len(before.uses), new_uses=len(after.uses))
    if found is not None:
        detail["impact"] = found.to_dict()  # last, as with_impact puts it
    return ShotChange(after.code, tuple(kinds) or (UNCHANGED,), before.cut_in, before.cut_out_incl, after.cut_in,
                      after.cut_out_incl, before.order, after.order, head, tail, needs_render, detail)


def _moved(old: dict[str, ShotCut], new: dict[str, ShotCut]) -> set[str]:
    """Shots in both revisions that are not on a longest run kept in the old relative order."""
    common = [code for code, _ in sorted(new.items(), key=lambda kv: kv[1].order) if code in old]
    kept = set(_longest_increasing(common, [old[c].order for c in common]))
    return {code for code in common if code not in kept}


def _longest_increasing(codes: list[str], keys: list[int]) -> list[str]:
    """The codes on one longest strictly increasing run of keys (patience sorting, O(n log n))."""
    tails: list[int] = []  # keys ending the best run of each length
    tail_index: list[int] = []
    parent = [-1] * len(keys)
    for i, key in enumerate(keys):
        at = bisect_left(tails, key)
        if at == len(tails):
            tails.append(key)
            tail_index.append(i)
        else:
            tails[at] = key
            tail_index[at] = i
        parent[i] = tail_index[at - 1] if at else -1
    run = []
    i = tail_index[-1] if tail_index else -1
    while i >= 0:
        run.append(codes[i])
        i = parent[i]
    return run


def summarize(changes: Iterable[ShotChange]) -> dict[str, int]:
    """How many shots had each kind of change."""
    counts = {kind: 0 for kind in KIND_ORDER}
    for change in changes:
        for kind in change.kinds:
            counts[kind] = counts.get(kind, 0) + 1
    return {kind: n for kind, n in counts.items() if n}
