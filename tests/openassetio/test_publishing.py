"""Publishing the way DCC hosts do it: preflight -> resolve (kManagerDriven) the working
location -> write there -> register; for an image sequence and a movie, with inputs
(a paint-over's base image as `init_image`, a reference as `concept_art`) recorded.
A host that never registers leaves nothing in the database or the store, and its working
folder is swept.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from openassetio.access import PublishingAccess, ResolveAccess
from openassetio.trait import TraitsData

from backlot.integrations.openassetio import traits as t

from .conftest import REF, written

CONTENT = t.LocatableContentTrait_v1


def path_of(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


def start_publish(manager, ref: str, kind: str) -> tuple:
    """preflight, then the working location: (working reference, folder to write into)."""
    context = manager.createContext()
    hint = TraitsData({t.EntityTrait_v1.kId, CONTENT.kId, t.KIND_TRAITS[kind]})
    [working] = manager.preflight([manager.createEntityReference(ref)], [hint], PublishingAccess.kWrite, context)
    [where] = manager.resolve([working], {CONTENT.kId}, ResolveAccess.kManagerDriven, context)
    assert CONTENT(where).getMimeType() == "inode/directory"
    folder = path_of(CONTENT(where).getLocation())
    assert folder.is_dir() and not any(folder.iterdir())
    return working, folder


def inputs_data(location: str, kind: str, mime_type: str | None = None) -> TraitsData:
    data = TraitsData({t.EntityTrait_v1.kId, t.KIND_TRAITS[kind]})
    CONTENT(data).setLocation(location)
    if mime_type:
        CONTENT(data).setMimeType(mime_type)
    t.InputsTrait(data).setInputs([("init_image", f"{REF}/characters/mara?v=2"),  # painted over
                                   ("concept_art", f"{REF}/characters/mara?v=approved")])  # the reference
    return data


def test_publish_an_image_sequence_from_a_host(manager, production):
    working, folder = start_publish(manager, f"{REF}/references/mara_turnaround", "reference")
    assert working.toString() == f"{REF}/references/mara_turnaround"
    for frame in (1001, 1002, 1003):
        (folder / f"turn.{frame:04d}.png").write_bytes(f"frame {frame}".encode())
    context = manager.createContext()
    [published] = manager.register([working], [inputs_data(folder.as_uri(), "reference")],
                                   PublishingAccess.kWrite, context)
    assert published.toString() == f"{REF}/references/mara_turnaround?v=1"
    assert not folder.exists()  # the store has the frames; the working copy is gone

    [back] = manager.resolve([published], {CONTENT.kId, t.InputsTrait.kId}, ResolveAccess.kRead, context)
    template = unquote(CONTENT(back).getLocation())
    assert CONTENT(back).getIsTemplated() is True and template.endswith("/turn.{frame:04d}.png")
    assert Path(urlparse(template.format(frame=1002)).path).read_bytes() == b"frame 1002"
    assert t.InputsTrait(back).getInputs() == [("concept_art", f"{REF}/characters/mara?v=3"),
                                               ("init_image", f"{REF}/characters/mara?v=2")]


def test_publish_a_movie_from_a_host(manager, production):
    working, folder = start_publish(manager, f"{REF}/references/mara_animatic", "reference")
    movie = folder / "animatic.mov"
    movie.write_bytes(b"\x00\x00\x00\x14ftypqt  fake movie")
    context = manager.createContext()
    [published] = manager.register([working], [inputs_data(movie.as_uri(), "reference", "video/quicktime")],
                                   PublishingAccess.kWrite, context)
    assert published.toString() == f"{REF}/references/mara_animatic?v=1"
    assert not folder.exists()
    [back] = manager.resolve([published], {CONTENT.kId, t.RecordTrait.kId}, ResolveAccess.kRead, context)
    assert CONTENT(back).getMimeType() == "video/quicktime"
    stored = path_of(CONTENT(back).getLocation())
    assert stored.name == "animatic.mov" and stored.read_bytes() == b"\x00\x00\x00\x14ftypqt  fake movie"
    # Published to an existing asset: preflight gives the same working reference again.
    again, second = start_publish(manager, f"{REF}/references/mara_animatic", "reference")
    assert again.toString() == working.toString() and second != folder


def test_a_host_that_never_registers_leaves_nothing_behind(manager, production, watched):
    before = written()
    working, folder = start_publish(manager, f"{REF}/references/abandoned", "reference")
    (folder / "abandoned.mov").write_bytes(b"never registered")
    assert written() == before  # no asset, version, event or stored object
    _, interface = watched
    backend = interface.backend
    assert backend.sweep_working() == []  # fresh: kept for the host
    old = time.time() - 2 * 24 * 3600
    for path in (folder / "abandoned.mov", folder):
        os.utime(path, (old, old))
    assert backend.sweep_working() == [folder] and not folder.exists()
    assert written() == before


def test_a_failed_register_keeps_the_working_folder_for_a_retry(manager, production):
    working, folder = start_publish(manager, f"{REF}/references/retry", "reference")
    (folder / "a.png").write_bytes(b"a")
    data = inputs_data(folder.as_uri(), "reference")
    t.InputsTrait(data).setInputs([("init_image", f"{REF}/characters/ghost")])
    errors = {}
    manager.register([working], [data], PublishingAccess.kWrite, manager.createContext(),
                     lambda *_: None, errors.__setitem__)
    assert list(errors) == [0] and folder.exists()
