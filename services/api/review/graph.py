"""The lineage of a version as an inline SVG: the version on the right, what it was made from to the left.

Deep or wide graphs are cut (with a count of what is left out) to stay readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

NODE_W, NODE_H, COL_GAP, ROW_GAP, PAD = 170, 46, 90, 14, 12
MAX_DEPTH, MAX_PER_COLUMN = 4, 10
KIND_ORDER = {"base_model": 0, "adapter": 1, "concept_art": 2, "reference": 3, "shot_render": 4}


@dataclass(frozen=True)
class Node:
    id: int
    asset: str
    kind: str
    number: int
    status: str
    superseded: bool
    stale: bool
    href: str | None


@dataclass(frozen=True)
class Edge:
    version_id: int  # the consumer
    input_id: int
    role: str


def layout(root: int, nodes: dict[int, Node], edges: list[Edge]) -> tuple[dict[int, tuple[int, int]], int]:
    """(x, y) of each drawn node, and how many were left out.

    Nodes within MAX_DEPTH steps of the version are drawn. Each goes in the column of its
    longest path from the version, so every input is left of everything made from it and
    every edge points right. Inputs ids are always smaller than their consumers' (the
    database's rule), so one pass in descending id order settles the columns.
    """
    near = {root: 0}
    for _ in range(MAX_DEPTH):
        for e in edges:
            if e.version_id in near and near[e.version_id] < MAX_DEPTH and e.input_id not in near:
                near[e.input_id] = near[e.version_id] + 1
    drawn = [e for e in edges if e.version_id in near and e.input_id in near]
    column = {root: 0}
    for e in sorted(drawn, key=lambda e: -e.version_id):
        if e.version_id in column:
            column[e.input_id] = max(column.get(e.input_id, 0), column[e.version_id] + 1)
    consumers: dict[int, list[int]] = {}
    for e in drawn:
        consumers.setdefault(e.input_id, []).append(e.version_id)
    deepest = max(column.values())
    place: dict[int, tuple[int, int]] = {}
    row_of: dict[int, int] = {}
    left_out = len(nodes) - len([n for n in column if n in nodes])
    for c in range(deepest + 1):
        ids = [n for n, col in column.items() if col == c and n in nodes]
        # Next to what they feed (mean row of their consumers), then by kind and name.
        ids.sort(key=lambda i: (sum(row_of.get(v, 0) for v in consumers.get(i, [])) / max(1, len(consumers.get(i, []))),
                                KIND_ORDER.get(nodes[i].kind, 9), nodes[i].asset, nodes[i].number))
        left_out += max(0, len(ids) - MAX_PER_COLUMN)
        for row, node_id in enumerate(ids[:MAX_PER_COLUMN]):
            row_of[node_id] = row
            place[node_id] = (PAD + (deepest - c) * (NODE_W + COL_GAP), PAD + row * (NODE_H + ROW_GAP))
    return place, max(0, left_out)


def render_svg(root: int, nodes: dict[int, Node], edges: list[Edge]) -> str:
    place, left_out = layout(root, nodes, edges)
    drawn = [e for e in edges if e.version_id in place and e.input_id in place]
    paths = [_edge(place[e.input_id], place[e.version_id], e.role) for e in drawn]
    width = max(x for x, _ in place.values()) + NODE_W + PAD
    bottom = max([y + NODE_H for _, y in place.values()] + [low for _, low in paths])
    height = bottom + PAD + (18 if left_out else 0)
    parts = [f'<svg class="lineage" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="lineage graph">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>']
    parts += [svg for svg, _ in paths]
    for node_id, (x, y) in place.items():
        parts.append(_node(nodes[node_id], x, y, node_id == root))
    if left_out:
        parts.append(f'<text class="left-out" x="{PAD}" y="{height - 6}">+ {left_out} more upstream, not drawn</text>')
    parts.append("</svg>")
    return "".join(parts)


def _edge(start: tuple[int, int], end: tuple[int, int], role: str) -> tuple[str, int]:
    """An input (left) to what was made from it (right). An edge that skips columns dips below the
    nodes it passes, deeper the further it goes, so it is not hidden behind them. Returns (svg, lowest y)."""
    x1, y1 = start[0] + NODE_W, start[1] + NODE_H // 2
    x2, y2 = end[0], end[1] + NODE_H // 2
    skipped = round((x2 - x1 - COL_GAP) / (NODE_W + COL_GAP))
    if skipped <= 0:
        d = f"M{x1},{y1} C{x1 + COL_GAP / 2},{y1} {x2 - COL_GAP / 2},{y2} {x2},{y2}"
        label_x, label_y, low = (x1 + x2) / 2, (y1 + y2) / 2 - 4, max(y1, y2)
    else:
        dip = max(y1, y2) + NODE_H // 2 + 10 + 12 * skipped
        d = f"M{x1},{y1} C{x1 + COL_GAP},{y1} {x1 + COL_GAP / 2},{dip} {x1 + COL_GAP},{dip} " \
            f"L{x2 - COL_GAP},{dip} C{x2 - COL_GAP / 2},{dip} {x2 - COL_GAP},{y2} {x2},{y2}"
        label_x, label_y, low = (x1 + x2) / 2, dip - 3, dip
    svg = (f'<g class="edge role-{escape(role)}"><path d="{d}" marker-end="url(#arrow)"/>'
           f'<text x="{label_x:.0f}" y="{label_y:.0f}">{escape(role)}</text></g>')
    return svg, int(low)


def _node(node: Node, x: int, y: int, is_root: bool) -> str:
    classes = ["node", f"kind-{node.kind}", f"status-{node.status}"]
    if node.superseded:
        classes.append("superseded")
    if node.stale:
        classes.append("stale")
    if is_root:
        classes.append("root")
    name = node.asset if len(node.asset) <= 24 else "…" + node.asset[-23:]
    flags = " · superseded" if node.superseded else " · stale" if node.stale else ""
    body = (f'<g class="{" ".join(classes)}" data-version="{node.id}"><title>{escape(node.asset)}@{node.number} '
            f'({escape(node.kind)}, {escape(node.status)}{flags})</title>'
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
            f'<text x="{x + 8}" y="{y + 18}" class="name">{escape(name)}</text>'
            f'<text x="{x + 8}" y="{y + 36}" class="sub">v{node.number} · {escape(node.status)}{flags}</text></g>')
    return f'<a href="{escape(node.href)}">{body}</a>' if node.href else body
