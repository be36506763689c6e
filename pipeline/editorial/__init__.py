"""Editorial: OTIO ingest, shot mapping, cut diff, conform.

    from backlot.editorial import import_cut, diff_revisions, conform_cut

    with backlot.session() as s:
        result = import_cut(s, "film", "reel1_v12.edl", create_shots=True)
        for change in result.changes:
            print(change.shot, change.explain())
        conform_cut(s, "film", "reel1_v12_conformed.otio", policy="approved")

Uses the tracker and lineage, never generation: what generation needs of the cut (frame
range, handles, editorial order) is written on the shots.
"""

from backlot.editorial.conform import ConformedClip, ConformResult, conform_cut
from backlot.editorial.diff import ShotChange, diff_cuts
from backlot.editorial.errors import CutInputError, Where
from backlot.editorial.flatten import CutClip, flatten_cut
from backlot.editorial.ingest import ImportResult, RevisionRecord, UnmatchedClip, import_cut
from backlot.editorial.mapping import DEFAULT_RULES, MappingRule, ShotMatch, match_clip
from backlot.editorial.reader import ReadOptions, ReadResult, read_cut_file
from backlot.editorial.revisions import DiffResult, ItemRecord, diff_revisions, get_revision, list_items, list_revisions
from backlot.editorial.settings import EditorialSettings, get_settings, set_settings

__all__ = [
    "ConformResult", "ConformedClip", "CutClip", "CutInputError", "DEFAULT_RULES", "DiffResult", "EditorialSettings",
    "ImportResult", "ItemRecord", "MappingRule", "ReadOptions", "ReadResult", "RevisionRecord", "ShotChange",
    "ShotMatch", "UnmatchedClip", "Where", "conform_cut", "diff_cuts", "diff_revisions", "flatten_cut",
    "get_revision", "get_settings", "import_cut", "list_items", "list_revisions", "match_clip", "read_cut_file",
    "set_settings",
]
