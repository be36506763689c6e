"""What a DCC does: find Backlot's manager by identifier, resolve a batch, publish, read it back."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from openassetio.access import DefaultEntityAccess, EntityTraitsAccess, PolicyAccess, PublishingAccess, RelationsAccess, ResolveAccess
from openassetio.errors import BatchElementException
from openassetio.hostApi import ManagerFactory
from openassetio.pluginSystem import PythonPluginSystemManagerImplementationFactory
from openassetio.trait import TraitsData
from openassetio_mediacreation.specifications.lifecycle import (
    EntityVersionsRelationshipSpecification_v1,
    StableEntityVersionsRelationshipSpecification_v1,
    StableReferenceRelationshipSpecification_v1,
)

import backlot
from backlot.integrations.openassetio import IDENTIFIER, PLUGIN_PATH
from backlot.integrations.openassetio import traits as t

from .conftest import REF, TestHost, backlot_ref, make_logger

LOCATION = {t.LocatableContentTrait_v1.kId, t.VersionTrait_v1.kId}


def local_path(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


def refs(manager, *strings):
    return [manager.createEntityReference(s) for s in strings]


def resolve(manager, strings, traits, access=ResolveAccess.kRead):
    return manager.resolve(refs(manager, *strings), set(traits), access, manager.createContext())


def related(manager, string, relationship: TraitsData, page_size=100, result_traits=frozenset()):
    pager = manager.getWithRelationship(refs(manager, string), relationship, page_size, RelationsAccess.kRead,
                                        manager.createContext(), set(result_traits))[0]
    out = []
    while page := pager.get():
        out.extend(r.toString() for r in page)
        pager.next()
    return out


# -- discovery and configuration -------------------------------------------------------------


def test_plugin_is_found_by_entry_point_and_by_plugin_path():
    by_entry_point = PythonPluginSystemManagerImplementationFactory(make_logger(), paths="",
                                                                     disableEntryPointsPlugins=False)
    by_path = PythonPluginSystemManagerImplementationFactory(make_logger(), paths=PLUGIN_PATH,
                                                              disableEntryPointsPlugins=True)
    assert IDENTIFIER in by_entry_point.identifiers()
    assert IDENTIFIER in by_path.identifiers()
    for factory in (by_entry_point, by_path):
        assert type(factory.instantiate(IDENTIFIER)).__module__ == "backlot.integrations.openassetio.manager"


def test_default_config_toml_picks_and_configures_the_manager(production, tmp_path, monkeypatch):
    config = tmp_path / "openassetio.toml"
    config.write_text(f'[manager]\nidentifier = "{IDENTIFIER}"\n\n[manager.settings]\nproject = "film"\n')
    monkeypatch.setenv("OPENASSETIO_DEFAULT_CONFIG", str(config))
    logger = make_logger()
    manager = ManagerFactory.defaultManagerForInterface(
        TestHost(), PythonPluginSystemManagerImplementationFactory(logger), logger)
    assert manager.identifier() == IDENTIFIER
    assert manager.settings()["project"] == "film"
    [default] = manager.defaultEntityReference([{t.EntityTrait_v1.kId, t.KIND_TRAITS["concept_art"]}],
                                               DefaultEntityAccess.kRead, manager.createContext())
    assert default.toString() == f"{REF}/characters/mara?v=approved"


def test_manager_describes_itself(manager):
    assert manager.displayName() == "Backlot"
    assert manager.isEntityReferenceString(f"{REF}/characters/mara")
    assert not manager.isEntityReferenceString("/shows/film/mara.png")
    for capability in manager.Capability.__members__.values():
        expected = capability not in (manager.Capability.kStatefulContexts, manager.Capability.kCustomTerminology)
        assert manager.hasCapability(capability) is expected, capability


# -- resolve ----------------------------------------------------------------------------------


def test_resolve_a_batch(manager, production):
    strings = [f"{REF}/characters/mara", f"{REF}/characters/mara?v=approved", backlot_ref(production.art_v1),
               backlot_ref(production.adapter), f"{REF}/characters/mara?v=latest"]
    results = resolve(manager, strings, LOCATION | {t.DisplayNameTrait_v1.kId})
    tags = [(t.VersionTrait_v1(r).getSpecifiedTag(), t.VersionTrait_v1(r).getStableTag()) for r in results]
    assert tags == [("latest", "3"), ("approved", "3"), ("1", "1"), ("1", "1"), ("latest", "3")]
    art3 = local_path(t.LocatableContentTrait_v1(results[0]).getLocation())
    assert art3.read_text() == "content of mara_v3.png"
    assert t.LocatableContentTrait_v1(results[0]).getMimeType() == "image/png"
    assert local_path(t.LocatableContentTrait_v1(results[2]).getLocation()).read_text() == "content of mara_v1.png"
    assert t.DisplayNameTrait_v1(results[0]).getQualifiedName() == "film / characters/mara / v3"


def test_resolve_backlot_traits(manager, production):
    traits = {t.RecordTrait.kId, t.InputsTrait.kId, t.OutputsTrait.kId, t.RecipeTrait.kId, t.StalenessTrait.kId,
              t.ArbitraryMetadataTrait_v1.kId}
    adapter, art3 = resolve(manager, [backlot_ref(production.adapter), f"{REF}/characters/mara"], traits)
    # In the tracker's role order: training_data, base_model, adapter, concept_art, ...
    assert t.InputsTrait(adapter).getInputs() == [("training_data", f"{REF}/characters/mara?v=1"),
                                                  ("base_model", f"{REF}/base_models/tiny?v=1")]
    assert t.OutputsTrait(adapter).getOutputs() == [("adapter", f"{REF}/shots/sq010_sh0010/main?v=1")]
    assert t.RecipeTrait(adapter).getBody() == {"rank": 8, "seed": 7}
    assert t.RecordTrait(adapter).getKind() == "adapter" and t.RecordTrait(adapter).getStatus() == "wip"
    stale = t.StalenessTrait(adapter)
    assert stale.getStale() is True
    assert (stale.getInput(), stale.getSupersededBy()) == (f"{REF}/characters/mara?v=1", f"{REF}/characters/mara?v=3")
    # Concept art is not generated: no recipe trait; its metadata comes as ArbitraryMetadata.
    assert not t.RecipeTrait.isImbuedTo(art3)
    assert t.StalenessTrait(art3).getStale() is False
    assert art3.getTraitProperty(t.ArbitraryMetadataTrait_v1.kId, "look") == "final"
    assert json.loads(art3.getTraitProperty(t.ArbitraryMetadataTrait_v1.kId, "tags")) == ["hero"]


def test_image_sequence_resolves_to_a_templated_url_and_frame_range(manager, production):
    [shot] = resolve(manager, [backlot_ref(production.shot)],
                     {t.LocatableContentTrait_v1.kId, t.FrameRangedTrait_v1.kId})
    content = t.LocatableContentTrait_v1(shot)
    assert content.getIsTemplated() is True
    template = unquote(content.getLocation())
    assert template.endswith("/frames/{frame:04d}.png")
    assert Path(urlparse(template.format(frame=1002)).path).read_text() == "frame 1002"
    frames = t.FrameRangedTrait_v1(shot)
    assert (frames.getStartFrame(), frames.getEndFrame(), frames.getFramesPerSecond()) == (1001, 1003, 24.0)


def test_entity_traits_follow_the_asset_kind(manager, production):
    strings = [f"{REF}/characters/mara", backlot_ref(production.adapter), f"{REF}/characters/new_one"]
    read = manager.entityTraits(refs(manager, *strings[:2]), EntityTraitsAccess.kRead, manager.createContext())
    write = manager.entityTraits(refs(manager, *strings), EntityTraitsAccess.kWrite, manager.createContext(),
                                 manager.BatchElementErrorPolicyTag.kVariant)
    assert read[0] == set(t.KIND_TRAIT_SETS["concept_art"]) == write[0]
    assert read[1] == set(t.KIND_TRAIT_SETS["adapter"])
    assert isinstance(write[1], Exception) or write[1].code.name == "kEntityAccessError"
    assert write[2] == set(t.NEW_ASSET_TRAITS)  # a new asset: publishing creates it


def test_existence(manager, production):
    strings = [f"{REF}/characters/mara?v=3", f"{REF}/characters/mara?v=4", f"{REF}/characters/ghost",
               "backlot:///nofilm/characters/mara", f"{REF}/characters/mara?v=approved"]
    assert manager.entityExists(refs(manager, *strings), manager.createContext()) == [True, False, False, False, True]


def test_management_policy(manager):
    image = {t.EntityTrait_v1.kId, t.LocatableContentTrait_v1.kId, t.ImageTrait_v1.kId,
             "openassetio-mediacreation:twoDimensional.PixelBased"}
    read, not_entity = manager.managementPolicy([image, {"some.other.trait"}], PolicyAccess.kRead,
                                                manager.createContext())
    assert t.ManagedTrait_v1.isImbuedTo(read)
    assert read.traitSet() == {t.ManagedTrait_v1.kId} | (image - {"openassetio-mediacreation:twoDimensional.PixelBased"})
    assert not_entity.traitSet() == set()
    [driven] = manager.managementPolicy([image], PolicyAccess.kManagerDriven, manager.createContext())
    # Backlot gives hosts a working folder to write into before registering.
    assert driven.traitSet() == {t.ManagedTrait_v1.kId, t.LocatableContentTrait_v1.kId}


# -- publish ----------------------------------------------------------------------------------


def test_publish_a_new_version_and_read_it_back(manager, production, files):
    context = manager.createContext()
    data = TraitsData({t.EntityTrait_v1.kId})
    t.LocatableContentTrait_v1(data).setLocation(files("mara_lora_v2.safetensors", b"weights v2").as_uri())
    t.InputsTrait(data).setInputs([("training_data", f"{REF}/characters/mara?v=approved"),
                                   ("base_model", f"{REF}/base_models/tiny")])
    t.RecipeTrait(data).setBody({"rank": 16, "seed": 7})
    t.RecordTrait(data).setStatus("review")
    data.setTraitProperty(t.ArbitraryMetadataTrait_v1.kId, "note", "retrained on v3")

    [working] = manager.preflight(refs(manager, f"{REF}/adapters/mara?v=latest"), [data],
                                  PublishingAccess.kWrite, context)
    assert working.toString() == f"{REF}/adapters/mara"
    [published] = manager.register([working], [data], PublishingAccess.kWrite, context)
    assert published.toString() == f"{REF}/adapters/mara?v=2"

    traits = LOCATION | {t.InputsTrait.kId, t.RecipeTrait.kId, t.RecordTrait.kId, t.StalenessTrait.kId,
                         t.ArbitraryMetadataTrait_v1.kId}
    [back] = manager.resolve([published], traits, ResolveAccess.kRead, context)
    assert local_path(t.LocatableContentTrait_v1(back).getLocation()).read_bytes() == b"weights v2"
    assert t.VersionTrait_v1(back).getStableTag() == "2"
    assert t.InputsTrait(back).getInputs() == [("training_data", f"{REF}/characters/mara?v=3"),
                                               ("base_model", f"{REF}/base_models/tiny?v=1")]
    assert t.RecipeTrait(back).getBody() == {"rank": 16, "seed": 7}
    assert t.RecordTrait(back).getStatus() == "review"
    assert back.getTraitProperty(t.ArbitraryMetadataTrait_v1.kId, "note") == "retrained on v3"
    assert t.StalenessTrait(back).getStale() is False
    with backlot.session() as s:  # the tracker sees the same version
        record = backlot.get_version(s, "film/adapters/mara@latest")
    assert (record.number, record.status, record.created_by) == (2, "review", "tester")


def test_publish_a_folder_creates_a_new_asset_of_the_given_kind(manager, production, files):
    for n in (1, 2):
        files(f"plate/frames/{n:04d}.png", f"plate {n}")
    data = TraitsData({t.EntityTrait_v1.kId, t.KIND_TRAITS["reference"]})
    t.LocatableContentTrait_v1(data).setLocation((files.root / "plate").as_uri())
    [published] = manager.register(refs(manager, f"{REF}/plates/sq010"), [data], PublishingAccess.kWrite,
                                   manager.createContext())
    assert published.toString() == f"{REF}/plates/sq010?v=1"
    [back] = manager.resolve([published], {t.LocatableContentTrait_v1.kId, t.RecordTrait.kId}, ResolveAccess.kRead,
                             manager.createContext())
    assert t.RecordTrait(back).getKind() == "reference"
    assert unquote(t.LocatableContentTrait_v1(back).getLocation()).endswith("/frames/{frame:04d}.png")


# -- relationships ----------------------------------------------------------------------------


def test_versions_with_and_without_latest(manager, production):
    mara = f"{REF}/characters/mara"
    with_latest = EntityVersionsRelationshipSpecification_v1.create().traitsData()
    stable = StableEntityVersionsRelationshipSpecification_v1.create().traitsData()
    assert related(manager, mara, with_latest) == [f"{mara}?v=latest", f"{mara}?v=3", f"{mara}?v=2", f"{mara}?v=1"]
    assert related(manager, f"{mara}?v=1", stable) == [f"{mara}?v=3", f"{mara}?v=2", f"{mara}?v=1"]
    t.VersionTrait_v1(with_latest).setSpecifiedTag("approved")
    t.VersionTrait_v1(stable).setSpecifiedTag("approved")
    assert related(manager, mara, with_latest) == [f"{mara}?v=approved"]
    assert related(manager, mara, stable) == [f"{mara}?v=3"]


def test_stable_reference_of_a_meta_version(manager, production):
    spec = StableReferenceRelationshipSpecification_v1.create().traitsData()
    assert related(manager, f"{REF}/characters/mara?v=approved", spec) == [f"{REF}/characters/mara?v=3"]
    assert related(manager, f"{REF}/adapters/mara", spec) == [f"{REF}/adapters/mara?v=1"]


def test_lineage_relationships_paged(manager, production):
    inputs = TraitsData({t.RelationshipTrait_v1.kId, t.InputsTrait.kId})
    shot = backlot_ref(production.shot)
    assert related(manager, shot, inputs, page_size=1) == [
        f"{REF}/base_models/tiny?v=1", f"{REF}/adapters/mara?v=1", f"{REF}/characters/mara?v=1"]
    t.InputsTrait(inputs).setRole("adapter")
    t.InputsTrait(inputs).setTransitive(True)
    # The adapter, then what it was made from.
    assert related(manager, shot, inputs) == [f"{REF}/adapters/mara?v=1"]
    whole = TraitsData({t.RelationshipTrait_v1.kId, t.InputsTrait.kId})
    t.InputsTrait(whole).setTransitive(True)
    assert related(manager, shot, whole, result_traits={t.KIND_TRAITS["concept_art"]}) == [f"{REF}/characters/mara?v=1"]
    outputs = TraitsData({t.RelationshipTrait_v1.kId, t.OutputsTrait.kId})
    t.OutputsTrait(outputs).setTransitive(True)
    # The shot uses the art directly (depth 1) and through the adapter: it comes once, nearest first.
    assert related(manager, backlot_ref(production.art_v1), outputs, page_size=1) == [
        f"{REF}/adapters/mara?v=1", f"{REF}/shots/sq010_sh0010/main?v=1"]


def test_relationships_of_many_references_in_one_call(manager, production):
    outputs = TraitsData({t.RelationshipTrait_v1.kId, t.OutputsTrait.kId})
    strings = [backlot_ref(production.art_v1), f"{REF}/characters/ghost", backlot_ref(production.base_model)]
    results = manager.getWithRelationship(refs(manager, *strings), outputs, 10, RelationsAccess.kRead,
                                          manager.createContext(), set(), manager.BatchElementErrorPolicyTag.kVariant)
    assert [r.toString() for r in results[0].get()] == [f"{REF}/adapters/mara?v=1",  # training_data
                                                        f"{REF}/shots/sq010_sh0010/main?v=1"]  # concept_art
    assert results[1].code.name == "kEntityResolutionError"
    assert [r.toString() for r in results[2].get()] == [f"{REF}/adapters/mara?v=1",
                                                        f"{REF}/shots/sq010_sh0010/main?v=1"]
    with pytest.raises(BatchElementException, match="has no asset 'characters/ghost'"):
        manager.getWithRelationship(refs(manager, *strings), outputs, 10, RelationsAccess.kRead,
                                    manager.createContext(), set())


LIGHT_HOST = """
import sys
from openassetio.access import ResolveAccess
from openassetio.hostApi import HostInterface, ManagerFactory
from openassetio.log import ConsoleLogger, SeverityFilter
from openassetio.pluginSystem import PythonPluginSystemManagerImplementationFactory

class Host(HostInterface):
    def identifier(self): return "org.backlot.tests.light"
    def displayName(self): return "light"

logger = SeverityFilter(ConsoleLogger())
manager = ManagerFactory.createManagerForInterface(
    "org.backlot.manager", Host(), PythonPluginSystemManagerImplementationFactory(logger), logger)
manager.initialize({})
[data] = manager.resolve([manager.createEntityReference("backlot:///film/characters/mara")],
                         {"openassetio-mediacreation:content.LocatableContent"}, ResolveAccess.kRead,
                         manager.createContext())
print(data.getTraitProperty("openassetio-mediacreation:content.LocatableContent", "location")[:8])
print(sorted(m for m in ("torch", "diffusers", "peft") if m in sys.modules))
"""


def test_the_plugin_loads_no_generation_libraries(production, db_url):
    """A DCC's Python resolves through the plugin (cache, listener and all) without torch or diffusers."""
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", LIGHT_HOST], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "DATABASE_URL": db_url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["file:///", "[]"]
