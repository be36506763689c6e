"""The lineage of a version as an inline SVG: the version on the right, what it was made from to the left.

A layered (Sugiyama) layout, as dagre draws it: a node's column is its longest path to the version, so
every edge points right. An edge that spans columns runs through a slot in each column between its ends,
and its label is a slot of its own in the column just left of the consumer: slots are stacked like nodes,
so no label can overlap another label or a node, and no line runs through a label. Column orders are swept
by barycentre to cut crossings, then each slot is pulled level with what it joins.

The continuity chain (the earlier shots the version continues from, shot to shot) is one group, earliest
first; an input that feeds several of its shots gets one edge ("adapter ×4"). Deep or wide graphs are cut,
with a count of what is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

NODE_W, NODE_H, ROW_H, GROUP_HEAD = 180, 46, 40, 24
COL_GAP, PAD, LABEL_H = 30, 12, 16
GAP = {True: 14, False: 6}  # between two boxes in a column of nodes / of labels and lines
MAX_DEPTH, MAX_PER_COLUMN, MAX_CHAIN = 4, 10, 12
KIND_ORDER = {"base_model": 0, "adapter": 1, "concept_art": 2, "reference": 3, "shot_render": 4}
GROUP = -1  # the continuity group's key among node ids (which are positive)
SWEEPS = 6


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


@dataclass(frozen=True)
class Link:
    """A drawn edge: `count` edges of one role from one input into the group become one."""

    source: int
    target: int
    role: str
    count: int = 1

    @property
    def label(self) -> str:
        return self.role if self.count == 1 else f"{self.role} ×{self.count}"


@dataclass
class Box:
    """Anything that takes room in a column: a node, the group, an edge's label, or an edge passing by."""

    key: object
    column: int
    width: float
    height: float
    y: float = 0.0


@dataclass(frozen=True)
class Layout:
    boxes: dict[object, Box]
    column_x: list[float]
    column_w: list[float]
    links: list[Link]
    routes: list[list[object]]  # per link: the keys of its boxes, source first, target last
    group: list[int]  # the chain's version ids, earliest first
    left_out: int
    width: float
    height: float


def layout(root: int, nodes: dict[int, Node], edges: list[Edge]) -> Layout:
    group, beyond = continuity_chain(root, nodes, edges)
    links = group_links([e for e in edges if e.version_id not in beyond and e.input_id not in beyond], group)
    ranks = longest_paths(root, links)
    if ranks is None and group:  # grouping would close a loop: draw every shot on its own
        group, links = [], group_links(edges, [])
        ranks = longest_paths(root, links)
    ranks = ranks or {root: 0}
    links = [link for link in links if link.source in ranks and link.target in ranks]
    ranks = trim_columns(root, nodes, links, ranks)
    links = [link for link in links if link.source in ranks and link.target in ranks]
    drawn = {k for k in ranks if k != GROUP} | (set(group) if GROUP in ranks else set())
    left_out = len(set(nodes) - drawn)
    boxes, routes = make_boxes(links, ranks, len(group))
    columns = order_columns(boxes, routes, nodes)
    column_w = [max(boxes[k].width for k in col) for col in columns]
    column_x, x = [0.0] * len(columns), PAD
    for c in reversed(range(len(columns))):
        column_x[c], x = x, x + column_w[c] + COL_GAP
    place_rows(boxes, columns, routes)
    height = max(b.y + b.height for b in boxes.values()) + PAD
    return Layout(boxes, column_x, column_w, links, routes, group if GROUP in ranks else [], left_out,
                  x - COL_GAP + PAD, height)


def continuity_chain(root: int, nodes: dict[int, Node], edges: list[Edge]) -> tuple[list[int], set[int]]:
    """The shots the root continues from, shot to shot: the nearest MAX_CHAIN, earliest first ([] if fewer than
    two), and the earlier ones, which are left out (the group stands for the chain)."""
    nearest: list[int] = []
    frontier = {root}
    while frontier:
        frontier = {e.input_id for e in edges if e.version_id in frontier and e.role == "continuity"
                    and e.input_id in nodes and nodes[e.input_id].kind == "shot_render"} - set(nearest) - {root}
        nearest += sorted(frontier, reverse=True)
    if len(nearest) < 2:
        return [], set()
    return sorted(nearest[:MAX_CHAIN]), set(nearest[MAX_CHAIN:])


def group_links(edges: list[Edge], group: list[int]) -> list[Link]:
    members = set(group)
    counts: dict[tuple[int, int, str], int] = {}
    for e in edges:
        source, target = (GROUP if e.input_id in members else e.input_id), (GROUP if e.version_id in members
                                                                             else e.version_id)
        if source != target:  # the chain's own links are its order
            counts[(source, target, e.role)] = counts.get((source, target, e.role), 0) + 1
    return [Link(s, t, role, n) for (s, t, role), n in counts.items()]


def longest_paths(root: int, links: list[Link]) -> dict[int, int] | None:
    """Column of each key within MAX_DEPTH steps of the root: its longest path to the root; None on a loop."""
    near, frontier = {root}, {root}
    for _ in range(MAX_DEPTH):
        frontier = {link.source for link in links if link.target in frontier} - near
        near |= frontier
    rank = {root: 0}
    for _ in range(len(near) + 1):
        changed = False
        for link in links:
            if link.target in rank and link.source in near and rank.get(link.source, -1) <= rank[link.target]:
                rank[link.source], changed = rank[link.target] + 1, True
        if not changed:
            return rank
    return None


def trim_columns(root: int, nodes: dict[int, Node], links: list[Link], ranks: dict[int, int]) -> dict[int, int]:
    """At most MAX_PER_COLUMN per column (by kind, then name), and only what still leads to the root."""
    kept = set()
    for c in set(ranks.values()):
        keys = sorted((k for k, r in ranks.items() if r == c), key=lambda k: _sort_key(k, nodes))
        kept |= set(keys[:MAX_PER_COLUMN])
    reach, frontier = {root}, {root}
    while frontier:
        frontier = {link.source for link in links if link.target in frontier and link.source in kept} - reach
        reach |= frontier
    return {k: r for k, r in ranks.items() if k in reach}


def make_boxes(links: list[Link], ranks: dict[int, int], members: int) -> tuple[dict[object, Box], list[list[object]]]:
    """Nodes in even columns; each link's label, then a slot per column it passes, in the odd ones."""
    boxes: dict[object, Box] = {}
    for key, r in ranks.items():
        height = GROUP_HEAD + members * ROW_H + 4 if key == GROUP else NODE_H
        boxes[key] = Box(key, 2 * r, NODE_W, height)
    routes = []
    for i, link in enumerate(links):
        first, last = 2 * ranks[link.target] + 1, 2 * ranks[link.source] - 1
        route: list[object] = [link.source]
        for c in range(last, first - 1, -1):
            key = ("label", i) if c == first else ("pass", i, c)
            boxes[key] = Box(key, c, label_width(link.label) if c == first else 0, LABEL_H if c == first else 2)
            route.append(key)
        routes.append(route + [link.target])
    return boxes, routes


def label_width(text: str) -> float:
    """A generous width for 11 px text, so the drawn label fits its slot in any common sans-serif."""
    return 12 + sum(9.5 if ch in "mwMW" else 8 if ch.isupper() else 7 if ch in "×_" else 6.6 for ch in text)


def order_columns(boxes: dict[object, Box], routes: list[list[object]], nodes: dict[int, Node]) -> list[list[object]]:
    """Orders within columns: barycentre sweeps, keeping the order with the fewest crossings."""
    count = max(b.column for b in boxes.values()) + 1
    columns: list[list[object]] = [[] for _ in range(count)]
    for key in sorted(boxes, key=lambda k: _sort_key(k, nodes)):
        columns[boxes[key].column].append(key)
    pairs = [(a, b) for route in routes for a, b in zip(route, route[1:])]  # (left, right)
    neighbours: dict[object, list[object]] = {k: [] for k in boxes}
    for a, b in pairs:
        neighbours[a].append(b)
        neighbours[b].append(a)
    best, best_crossings = [list(c) for c in columns], _crossings(columns, pairs, boxes)
    for sweep in range(SWEEPS):
        toward_root = sweep % 2 == 0
        for c in (range(1, count) if toward_root else range(count - 2, -1, -1)):
            pos = {k: i for i, k in enumerate(columns[c - 1 if toward_root else c + 1])}
            current = {k: i for i, k in enumerate(columns[c])}

            def barycentre(k: object) -> tuple[float, int]:
                near = [pos[n] for n in neighbours[k] if n in pos]
                return (sum(near) / len(near) if near else current[k], current[k])

            columns[c].sort(key=barycentre)
        crossings = _crossings(columns, pairs, boxes)
        if crossings < best_crossings:
            best, best_crossings = [list(c) for c in columns], crossings
    return best


def place_rows(boxes: dict[object, Box], columns: list[list[object]], routes: list[list[object]]) -> None:
    """y of every box: stacked in column order, then pulled level with its neighbours, never overlapping."""
    neighbours: dict[object, list[object]] = {k: [] for k in boxes}
    for route in routes:
        for a, b in zip(route, route[1:]):
            neighbours[a].append(b)
            neighbours[b].append(a)
    for col in columns:
        _stack(boxes, col, {k: 0.0 for k in col})
    for sweep in range(2 * SWEEPS):
        for col in (columns if sweep % 2 == 0 else list(reversed(columns))):
            wanted = {k: (sum(boxes[n].y + boxes[n].height / 2 for n in neighbours[k]) / len(neighbours[k])
                          if neighbours[k] else boxes[k].y + boxes[k].height / 2) - boxes[k].height / 2 for k in col}
            _stack(boxes, col, wanted)
    top = min(b.y for b in boxes.values())
    for b in boxes.values():
        b.y += PAD - top


def _stack(boxes: dict[object, Box], col: list[object], wanted: dict[object, float]) -> None:
    """As near the wanted tops as the order and the gaps allow: push down where they would overlap, then
    move the whole column by the mean miss."""
    gap, bottom = GAP[boxes[col[0]].column % 2 == 0], None
    for k in col:
        boxes[k].y = wanted[k] if bottom is None else max(wanted[k], bottom + gap)
        bottom = boxes[k].y + boxes[k].height
    shift = sum(wanted[k] - boxes[k].y for k in col) / len(col)
    for k in col:
        boxes[k].y += shift


def _crossings(columns: list[list[object]], pairs: list[tuple[object, object]], boxes: dict[object, Box]) -> int:
    pos = {k: i for col in columns for i, k in enumerate(col)}
    by_column: dict[int, list[tuple[int, int]]] = {}
    for a, b in pairs:
        by_column.setdefault(boxes[a].column, []).append((pos[a], pos[b]))
    return sum(1 for segs in by_column.values() for i, (a1, b1) in enumerate(segs) for a2, b2 in segs[i + 1:]
               if (a1 - a2) * (b1 - b2) < 0)


def _sort_key(key: object, nodes: dict[int, Node]) -> tuple:
    if key == GROUP:
        return (KIND_ORDER["shot_render"], "", 0)
    if isinstance(key, int) and key in nodes:
        n = nodes[key]
        return (KIND_ORDER.get(n.kind, 9), n.asset, n.number)
    return (10, str(key), 0)


# -- SVG ------------------------------------------------------------------------------------


def render_svg(root: int, nodes: dict[int, Node], edges: list[Edge]) -> str:
    plan = layout(root, nodes, edges)
    height = plan.height + (18 if plan.left_out else 0)
    width = round(plan.width)
    parts = [f'<svg class="lineage" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0f}" '
             f'viewBox="0 0 {width} {height:.0f}" role="img" aria-label="lineage graph">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>']
    ports = _ports(plan)
    parts += [_edge(plan, link, route, ports[i]) for i, (link, route) in enumerate(zip(plan.links, plan.routes))]
    for key, box in plan.boxes.items():
        x = plan.column_x[box.column]
        if key == GROUP:
            parts.append(_group(plan.group, nodes, x, box.y, box.height))
        elif isinstance(key, int):
            parts.append(_node(nodes[key], x, box.y, NODE_W, NODE_H, key == root))
    if plan.left_out:
        parts.append(f'<text class="left-out" x="{PAD}" y="{height - 6:.0f}">+ {plan.left_out} more upstream, '
                     f'not drawn</text>')
    parts.append("</svg>")
    return "".join(parts)


def _ports(plan: Layout) -> list[tuple[float, float]]:
    """Where each edge leaves its input and reaches its consumer: spread down the node's side in the order of
    the slots they come from, so several arrows into one node stay apart."""
    ends: dict[tuple[object, int], list[tuple[float, int]]] = {}
    for i, route in enumerate(plan.routes):
        ends.setdefault((route[0], 0), []).append((plan.boxes[route[1]].y, i))
        ends.setdefault((route[-1], 1), []).append((plan.boxes[route[-2]].y, i))
    ports = [[0.0, 0.0] for _ in plan.routes]
    for (key, end), items in ends.items():
        box = plan.boxes[key]
        for n, (_, i) in enumerate(sorted(items)):
            ports[i][end] = box.y + box.height * (n + 1) / (len(items) + 1)
    return [(a, b) for a, b in ports]


def _edge(plan: Layout, link: Link, route: list[object], ports: tuple[float, float]) -> str:
    """Across each slot's column level, curving between columns; the label sits on its slot, over the line."""
    points = []
    for i, key in enumerate(route):
        box, x = plan.boxes[key], plan.column_x[plan.boxes[key].column]
        middle = ports[0] if i == 0 else ports[1] if i == len(route) - 1 else box.y + box.height / 2
        if i > 0:
            points.append((x, middle))
        if i < len(route) - 1:
            points.append((x + (NODE_W if isinstance(key, int) else plan.column_w[box.column]), middle))
    d = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
    for (x1, y1), (x2, y2) in zip(points, points[1:]):
        if abs(y1 - y2) < 0.5 or x2 - x1 < COL_GAP / 2:
            d += f" L{x2:.1f},{y2:.1f}"
        else:
            mid = (x1 + x2) / 2
            d += f" C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    label = plan.boxes[next(k for k in route if isinstance(k, tuple) and k[0] == "label")]
    lx = plan.column_x[label.column] + plan.column_w[label.column] / 2
    return (f'<g class="edge role-{escape(link.role)}"><path d="{d}" marker-end="url(#arrow)"/>'
            f'<rect class="label-bg" x="{lx - label.width / 2:.1f}" y="{label.y:.1f}" width="{label.width:.1f}" '
            f'height="{LABEL_H}" rx="3"/><text x="{lx:.1f}" y="{label.y + LABEL_H - 4:.1f}">'
            f'{escape(link.label)}</text></g>')


def _group(members: list[int], nodes: dict[int, Node], x: float, y: float, height: float) -> str:
    rows = "".join(_node(nodes[m], x + 8, y + GROUP_HEAD + i * ROW_H, NODE_W - 16, ROW_H - 6, False)
                   for i, m in enumerate(members))
    return (f'<g class="group continuity" data-versions="{" ".join(map(str, members))}">'
            f'<title>continuity: the {len(members)} shots this one continues from, earliest first</title>'
            f'<rect x="{x}" y="{y:.1f}" width="{NODE_W}" height="{height}" rx="8"/>'
            f'<text x="{x + 8}" y="{y + 16:.1f}" class="head">continuity · {len(members)} shots</text>{rows}</g>')


def _node(node: Node, x: float, y: float, width: int, height: int, is_root: bool) -> str:
    classes = ["node", f"kind-{node.kind}", f"status-{node.status}"]
    if node.superseded:
        classes.append("superseded")
    if node.stale:
        classes.append("stale")
    if is_root:
        classes.append("root")
    fit = (width - 16) // 7
    name = node.asset.removeprefix("shots/") if node.kind == "shot_render" else node.asset  # the kind says it
    name = name if len(name) <= fit else "…" + name[-(fit - 1):]
    flags = " · superseded" if node.superseded else " · stale" if node.stale else ""
    first, second = (y + 18, y + 36) if height >= NODE_H else (y + 15, y + 29)
    body = (f'<g class="{" ".join(classes)}" data-version="{node.id}"><title>{escape(node.asset)}@{node.number} '
            f'({escape(node.kind)}, {escape(node.status)}{flags})</title>'
            f'<rect x="{x}" y="{y:.1f}" width="{width}" height="{height}" rx="6"/>'
            f'<text x="{x + 8}" y="{first:.1f}" class="name">{escape(name)}</text>'
            f'<text x="{x + 8}" y="{second:.1f}" class="sub">v{node.number} · {escape(node.status)}{flags}</text></g>')
    return f'<a href="{escape(node.href)}">{body}</a>' if node.href else body
