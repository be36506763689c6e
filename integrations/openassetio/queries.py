"""The SQL behind the plugin: one statement per batch, whatever its size.

Each statement takes the batch as parallel arrays (`unnest`), so a batch of 10,000
references is one round trip, like a batch of one. Optional parts (files, recipe,
lineage, staleness) are joined only when the caller asks for the traits that need them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sqlalchemy import TextClause, text

# The batch, resolved to projects, assets and versions. A missing project, asset or version
# leaves NULLs, so each element can be told precisely what is missing.
_TARGETS = """
SELECT r.idx, r.project, r.asset, r.tag,
       p.id AS project_id, p.fps_num, p.fps_den, a.id AS asset_id, a.kind::text AS kind,
       a.latest_number, a.approved_number,
       v.id AS version_id, v.number{version_columns}
FROM unnest(CAST(:idx AS int[]), CAST(:project AS text[]), CAST(:asset AS text[]), CAST(:tag AS text[]))
     AS r(idx, project, asset, tag)
LEFT JOIN projects p ON lower(p.code) = lower(r.project)
LEFT JOIN assets a ON a.project_id = p.id AND a.name = r.asset
LEFT JOIN versions v ON v.asset_id = a.id AND v.number = CASE r.tag
    WHEN 'latest' THEN a.latest_number WHEN 'approved' THEN a.approved_number ELSE CAST(r.tag AS int) END
"""

_CONTENT_COLUMNS = """,
       v.content_hash, v.media_type"""
_VERSION_COLUMNS = """,
       v.status::text AS status, v.created_by, v.created_at, v.metadata"""

_FILES = """
LEFT JOIN LATERAL (SELECT array_agg(f.path ORDER BY f.path) AS files
                   FROM version_files f WHERE f.version_id = v.id) vf ON true"""

_RECIPE = """
LEFT JOIN recipes rc ON rc.id = v.recipe_id"""

# Lineage edges as [role, project, asset, number] arrays, in the tracker's role order.
_EDGES = """
LEFT JOIN LATERAL (SELECT json_agg(json_build_array(e.role, ep.code, ea.name, ev.number)
                                   ORDER BY e.role, ev.id) AS {name}
                   FROM version_inputs e JOIN versions ev ON ev.id = e.{far}
                   JOIN assets ea ON ea.id = ev.asset_id JOIN projects ep ON ep.id = ev.project_id
                   WHERE e.{near} = v.id) {alias} ON true"""

# Staleness by the definition (docs/stale.md), for any version: walk up the inputs (not
# regenerated_from) through versions that are not superseded; the nearest superseded one
# found is the reason. `versions.superseded` is the trigger-maintained flag, so project
# policies are already applied.
_STALENESS = """
LEFT JOIN LATERAL (
    WITH RECURSIVE up(id, depth) AS (
        SELECT e.input_id, 1 FROM version_inputs e
        WHERE e.version_id = v.id AND e.role <> 'regenerated_from'
      UNION
        SELECT e.input_id, up.depth + 1 FROM up
        JOIN versions uv ON uv.id = up.id AND NOT uv.superseded
        JOIN version_inputs e ON e.version_id = up.id AND e.role <> 'regenerated_from'
    )
    SELECT sp.code AS stale_project, sa.name AS stale_asset, sv.number AS stale_number, up.depth AS stale_depth,
           CASE WHEN sp.stale_policy = 'approved' THEN sa.approved_number
                ELSE backlot_asset_pointer(sa.id, sp.stale_policy) END AS stale_superseded_by
    FROM up JOIN versions sv ON sv.id = up.id AND sv.superseded
    JOIN assets sa ON sa.id = sv.asset_id JOIN projects sp ON sp.id = sv.project_id
    ORDER BY up.depth, up.id LIMIT 1
) st ON true"""


@dataclass(frozen=True)
class Need:
    """Which optional parts of a version a batch needs."""

    version: bool = False  # status, hash, media type, author, metadata
    files: bool = False
    recipe: bool = False
    inputs: bool = False
    outputs: bool = False
    staleness: bool = False


@functools.lru_cache(maxsize=None)  # at most 64 variants; built once each
def targets_query(need: Need) -> TextClause:
    columns, joins = "", ""
    if need.version or need.files:
        columns += _CONTENT_COLUMNS
    if need.version:
        columns += _VERSION_COLUMNS
    if need.files:
        columns += ", vf.files"
        joins += _FILES
    if need.recipe:
        columns += ", rc.sha256 AS recipe_sha256, rc.body AS recipe_body"
        joins += _RECIPE
    if need.inputs:
        columns += ", vin.inputs"
        joins += _EDGES.format(name="inputs", far="input_id", near="version_id", alias="vin")
    if need.outputs:
        columns += ", vout.outputs"
        joins += _EDGES.format(name="outputs", far="version_id", near="input_id", alias="vout")
    if need.staleness:
        columns += ", st.*"
        joins += _STALENESS
    return text(_TARGETS.format(version_columns=columns) + joins + "\nORDER BY r.idx")


# Relationship queries. `rel` says what each request wants: versions (with the `latest`
# meta-version first), stable_versions, stable (the concrete version a reference points
# at), inputs, outputs, or none (an unknown relationship: the reference is still checked).
# The two lineage walks are separate recursive CTEs so each uses its own index.
RELATIONS = text("""
WITH RECURSIVE
t AS (
    SELECT q.req, q.project, q.asset, q.rel, q.role, q.transitive,
           p.id AS project_id, a.id AS asset_id, a.kind::text AS kind, a.latest_number, a.approved_number,
           v.id AS version_id, v.number
    FROM unnest(CAST(:req AS int[]), CAST(:project AS text[]), CAST(:asset AS text[]), CAST(:tag AS text[]),
                CAST(:rel AS text[]), CAST(:role AS text[]), CAST(:transitive AS bool[]))
         AS q(req, project, asset, tag, rel, role, transitive)
    LEFT JOIN projects p ON lower(p.code) = lower(q.project)
    LEFT JOIN assets a ON a.project_id = p.id AND a.name = q.asset
    LEFT JOIN versions v ON v.asset_id = a.id AND v.number = CASE q.tag
        WHEN 'latest' THEN a.latest_number WHEN 'approved' THEN a.approved_number ELSE CAST(q.tag AS int) END
),
up(req, id, role, depth, transitive) AS (
    SELECT t.req, e.input_id, e.role, 1, t.transitive FROM t
    JOIN version_inputs e ON e.version_id = t.version_id WHERE t.rel = 'inputs'
  UNION
    SELECT up.req, e.input_id, e.role, up.depth + 1, true FROM up
    JOIN version_inputs e ON e.version_id = up.id WHERE up.transitive
),
down(req, id, role, depth, transitive) AS (
    SELECT t.req, e.version_id, e.role, 1, t.transitive FROM t
    JOIN version_inputs e ON e.input_id = t.version_id WHERE t.rel = 'outputs'
  UNION
    SELECT down.req, e.version_id, e.role, down.depth + 1, true FROM down
    JOIN version_inputs e ON e.input_id = down.id WHERE down.transitive
),
-- Each related version once, at its nearest depth (with the role it has there).
edges AS (
    SELECT DISTINCT ON (x.req, x.id) x.req, x.id, x.role, x.depth
    FROM (SELECT req, id, role, depth FROM up UNION ALL SELECT req, id, role, depth FROM down) x
    JOIN t ON t.req = x.req
    WHERE t.role IS NULL OR x.role::text = t.role
    ORDER BY x.req, x.id, x.depth, x.role
),
-- Ordered nearest first, then by role (in the order the tracker declares them), then oldest first.
hits AS (
    SELECT e.req, e.depth AS o1, array_position(enum_range(NULL::input_role), e.role) AS o2, ev.id AS o3,
           ep.code AS hit_project, ea.name AS hit_asset, ea.kind::text AS hit_kind, ev.number::text AS hit_tag
    FROM edges e JOIN versions ev ON ev.id = e.id
    JOIN assets ea ON ea.id = ev.asset_id JOIN projects ep ON ep.id = ev.project_id
  UNION ALL
    SELECT t.req, 0, 0, 0::bigint, t.project, t.asset, t.kind, 'latest' FROM t
    WHERE t.rel = 'versions' AND t.version_id IS NOT NULL
  UNION ALL
    SELECT t.req, 1, 0, -vs.number::bigint, t.project, t.asset, t.kind, vs.number::text FROM t
    JOIN versions vs ON vs.asset_id = t.asset_id
    WHERE t.rel IN ('versions', 'stable_versions') AND t.version_id IS NOT NULL
  UNION ALL
    SELECT t.req, 0, 0, 0::bigint, t.project, t.asset, t.kind, t.number::text FROM t
    WHERE t.rel = 'stable' AND t.version_id IS NOT NULL
)
SELECT t.req, t.project_id, t.asset_id, t.version_id, t.latest_number, t.approved_number,
       h.hit_project, h.hit_asset, h.hit_kind, h.hit_tag
FROM t LEFT JOIN hits h ON h.req = t.req AND (CAST(:kinds AS text[]) IS NULL OR h.hit_kind = ANY(CAST(:kinds AS text[])))
ORDER BY t.req, h.o1, h.o2, h.o3
""")

# Default references: per requested kind, the project's asset of that kind whose newest
# version is the most recent (its approved version when it has one).
DEFAULTS = text("""
SELECT k.idx, d.name, d.approved_number
FROM unnest(CAST(:idx AS int[]), CAST(:kind AS text[])) AS k(idx, kind)
LEFT JOIN LATERAL (
    SELECT a.name, a.approved_number FROM assets a JOIN projects p ON p.id = a.project_id
    JOIN versions v ON v.asset_id = a.id AND v.number = a.latest_number
    WHERE lower(p.code) = lower(:project) AND a.kind::text = k.kind
    ORDER BY v.created_at DESC, a.id DESC LIMIT 1
) d ON true
ORDER BY k.idx
""")


# What the `preload` setting caches: the project's versions, newest first, with whether each
# is its asset's newest (then its meta-versions are cached too) and whether it has an approved one.
PRELOAD = text("""
SELECT a.name, v.number, v.number = a.latest_number AS newest, a.approved_number IS NOT NULL AS approved
FROM projects p JOIN assets a ON a.project_id = p.id JOIN versions v ON v.asset_id = a.id
WHERE lower(p.code) = lower(:project)
ORDER BY v.id DESC LIMIT :limit
""")


# The resolve fast path (LocatableContent, Version, DisplayName and the traits without
# properties): the batch travels as one string, canonical references one per line (an
# empty line for one Python already rejected), and PostgreSQL returns, per reference, the
# finished values the traits hold. No ORDER BY (the host's callbacks take an index, in any
# order) and no per-row subquery: version_files is a plain join, so a version with several
# files gives several rows (the caller notices: more rows than references) and one with
# none gives a NULL path. `url` is finished here when the file name needs no
# percent-encoding (the characters `urllib.parse.quote` leaves as they are); else NULL and
# the caller builds it. The two `OFFSET 0` fences keep each reference split once.
# Columns: idx, kind, mime_type, templated, url, stable_tag, specified_tag, name,
# qualified_name, content_hash, path, miss (NULL: found; -2: no project; -1: no asset;
# else the asset's latest number), asset_id (what the cache drops meta-versions by).
_LOCATE_FROM = """
SELECT (r.idx - 1)::int, a.kind::text, v.media_type, false,
       CASE WHEN f.path ~ '^[A-Za-z0-9_.~/-]+$' THEN %(base)s || v.content_hash || '/' || f.path END,
       v.number::text, r.tag, {names}, v.content_hash, f.path,
       CASE WHEN v.id IS NOT NULL THEN NULL WHEN p.id IS NULL THEN -2 WHEN a.id IS NULL THEN -1
            ELSE a.latest_number END,
       a.id
FROM (SELECT x.idx, split_part(x.path, '/', 1) AS project, substr(x.path, strpos(x.path, '/') + 1) AS asset,
             CASE WHEN x.q = '' THEN 'latest' ELSE substr(x.q, 3) END AS tag
      FROM (SELECT split_part(substr(u.s, 12), '?', 1) AS path, split_part(u.s, '?', 2) AS q, u.idx
            FROM unnest(string_to_array(%(refs)s, E'\\n')) WITH ORDINALITY AS u(s, idx) OFFSET 0) x
      OFFSET 0) r
"""
# Many references: plain joins (the planner sees the whole batch).
_LOCATE = _LOCATE_FROM + """LEFT JOIN projects p ON lower(p.code) = lower(r.project)
LEFT JOIN assets a ON a.project_id = p.id AND a.name = r.asset
LEFT JOIN versions v ON v.asset_id = a.id AND v.number = CASE r.tag
    WHEN 'latest' THEN a.latest_number WHEN 'approved' THEN a.approved_number ELSE CAST(r.tag AS int) END
LEFT JOIN version_files f ON f.version_id = v.id
"""
# The same for a few references, on the prepared connection, whose generic plan cannot see
# how many references come: each lookup is a LATERAL subquery (LIMIT 1 or OFFSET 0 keeps
# the planner from flattening it), so the plan is index lookups per reference, never a
# hash join over a whole table. Same columns.
_LOCATE_SMALL = _LOCATE_FROM + """LEFT JOIN LATERAL (SELECT p.id FROM projects p WHERE lower(p.code) = lower(r.project) LIMIT 1) p ON true
LEFT JOIN LATERAL (SELECT a.id, a.kind, a.latest_number, a.approved_number FROM assets a
                   WHERE a.project_id = p.id AND a.name = r.asset LIMIT 1) a ON true
LEFT JOIN LATERAL (SELECT v.id, v.number, v.media_type, v.content_hash FROM versions v
                   WHERE v.asset_id = a.id AND v.number = CASE r.tag WHEN 'latest' THEN a.latest_number
                         WHEN 'approved' THEN a.approved_number ELSE CAST(r.tag AS int) END LIMIT 1) v ON true
LEFT JOIN LATERAL (SELECT f.path FROM version_files f WHERE f.version_id = v.id OFFSET 0) f ON true
"""
_NAMES = ("substring(r.asset FROM '[^/]+$') || ' v' || v.number, "
          "r.project || ' / ' || r.asset || ' / v' || v.number")
LOCATE = _LOCATE.format(names="NULL, NULL")
LOCATE_NAMED = _LOCATE.format(names=_NAMES)
LOCATE_SMALL = _LOCATE_SMALL.format(names="NULL, NULL")
LOCATE_SMALL_NAMED = _LOCATE_SMALL.format(names=_NAMES)
