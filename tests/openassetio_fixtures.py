"""Fixtures for OpenAssetIO's manager API compliance suite, run against Backlot's plugin.

    python -m openassetio.test.manager -f tests/openassetio_fixtures.py

The database is disposable: BACKLOT_OPENASSETIO_TEST_DATABASE_URL when set (a migrated,
empty database, e.g. the clone tests/openassetio/test_compliance.py makes), else an
embedded PostgreSQL in a temporary BACKLOT_HOME, started here and stopped at exit. It is
seeded through the `backlot` API; the store and source files live in a temporary folder.
Expected error messages are spelled out, so a change of wording shows up here.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from openassetio.trait import TraitsData
from sqlalchemy import create_engine

import backlot
from backlot.db import migrate
from backlot.db.embedded import EmbeddedPostgres
from backlot.db.engine import session_scope

from backlot.integrations.openassetio import traits as t

PROJECT = "compliance"
ROOT = Path(tempfile.mkdtemp(prefix="backlot-oaio-"))
atexit.register(shutil.rmtree, ROOT, ignore_errors=True)


def _database() -> str:
    if url := os.environ.get("BACKLOT_OPENASSETIO_TEST_DATABASE_URL"):
        return url
    server = EmbeddedPostgres(ROOT / "home", server_options="-c fsync=off -c synchronous_commit=off")
    url = server.start()
    atexit.register(server.stop)  # registered after rmtree, so it runs first
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


def _source(name: str) -> Path:
    path = ROOT / "src" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"content of {name}\n")
    return path


def _seed(url: str, store: backlot.Store) -> None:
    """characters/mara (concept art, v1 approved, v2), adapters/mara v1 and v2 trained on mara v1,
    and register/target, the asset the register test publishes to."""
    engine = create_engine(url)
    with session_scope(engine) as s:
        backlot.create_project(s, PROJECT, fps="24")

        def publish(asset: str, name: str, kind: str, **kw) -> backlot.VersionRecord:
            return backlot.publish_version(s, PROJECT, asset, [_source(name)], kind=kind, store=store,
                                            actor="compliance", **kw)

        art = publish("characters/mara", "mara_v1.png", "concept_art", status="approved")
        publish("characters/mara", "mara_v2.png", "concept_art")
        for n in (1, 2):
            publish("adapters/mara", f"mara_lora_{n}.safetensors", "adapter", inputs=[("training_data", art.ref)],
                    recipe={"rank": 8, "steps": 100 * n, "seed": n})
        publish("register/target", "target_v1.txt", "reference")
    engine.dispose()


URL = _database()
STORE = ROOT / "store"
_seed(URL, backlot.Store(str(STORE)))

REF = f"backlot:///{PROJECT}"
MARA = f"{REF}/characters/mara"
MARA_V1 = f"{MARA}?v=1"
ADAPTER = f"{REF}/adapters/mara"
MISSING = f"{REF}/characters/nobody"
MALFORMED = f"{REF}"
WRITABLE = f"{REF}/register/target"

MALFORMED_MESSAGE = f"'{MALFORMED}' has no valid asset path: expected backlot:///PROJECT/ASSET_PATH?v=N|latest|approved"
MISSING_MESSAGE = f"{MISSING}: project '{PROJECT}' has no asset 'characters/nobody'"
READ_ONLY_MESSAGE = f"{MARA_V1} is read-only (versions are immutable): publish to {MARA} to make a new version"

CONCEPT_ART_TRAITS = set(t.KIND_TRAIT_SETS["concept_art"])
ADAPTER_TRAITS = set(t.KIND_TRAIT_SETS["adapter"])


def _publish_data() -> TraitsData:
    data = TraitsData({t.EntityTrait_v1.kId})
    t.LocatableContentTrait_v1(data).setLocation(_source("target_next.txt").as_uri())
    return data


def _preflight_hint(*kinds: str) -> TraitsData:
    return TraitsData({t.EntityTrait_v1.kId, t.LocatableContentTrait_v1.kId, *(t.KIND_TRAITS[k] for k in kinds)})


def _outputs_relationship(**props) -> TraitsData:
    data = TraitsData({t.RelationshipTrait_v1.kId, t.OutputsTrait.kId})
    for key, value in props.items():
        data.setTraitProperty(t.OutputsTrait.kId, key, value)
    return data


# The cache stays on (the default): the suite passes with it.
SETTINGS = {"database_url": URL, "store_url": str(STORE), "user": "compliance", "project": PROJECT, "cache": "on",
            "preload": ""}

fixtures = {
    "identifier": "org.backlot.manager",
    "settings": SETTINGS,
    "shared": {
        "identifier": "org.backlot.manager",
        "display_name": "Backlot",
        "info": {"entityReferencesMatchPrefix": "backlot:///"},
    },
    "Test_initialize": {
        "test_when_settings_have_all_keys_then_all_settings_updated": {
            "some_settings_with_all_keys": {**SETTINGS, "user": "compliance-all", "project": ""},
        },
        "test_when_settings_have_subset_of_keys_then_other_settings_unchanged": {
            "some_settings_with_a_subset_of_keys": {"user": "compliance-some"},
        },
    },
    "Test_isEntityReferenceString": {
        "shared": {"a_valid_reference": MARA_V1, "an_invalid_reference": "file:///tmp/mara_v1.png"},
    },
    "Test_entityExists": {
        "shared": {"a_reference_to_an_existing_entity": MARA_V1, "a_reference_to_a_nonexisting_entity": MISSING},
        "test_when_querying_malformed_reference_then_malformed_reference_error_is_returned": {
            "a_malformed_reference": MALFORMED, "expected_error_message": MALFORMED_MESSAGE,
        },
    },
    "Test_entityTraits": {
        "shared": {
            "first_entity_reference": MARA, "first_entity_trait_set": CONCEPT_ART_TRAITS,
            "second_entity_reference": ADAPTER, "second_entity_trait_set": ADAPTER_TRAITS,
        },
        "test_when_querying_malformed_reference_then_malformed_reference_error_is_returned": {
            "a_malformed_reference": MALFORMED, "expected_error_message": MALFORMED_MESSAGE,
        },
        "test_when_querying_missing_reference_for_read_then_resolution_error_is_returned": {
            "a_reference_to_a_missing_entity": MISSING, "expected_error_message": MISSING_MESSAGE,
        },
        "test_when_read_only_entity_queried_for_write_then_access_error_is_returned": {
            "a_reference_to_a_readonly_entity": MARA_V1, "expected_error_message": READ_ONLY_MESSAGE,
        },
    },
    "Test_resolve": {
        "shared": {
            "a_reference_to_a_readable_entity": MARA_V1,
            "a_set_of_valid_traits": {t.LocatableContentTrait_v1.kId, t.VersionTrait_v1.kId},
            "a_reference_to_a_readonly_entity": MARA_V1,
            # kManagerDriven gives a working location to write into: a numbered version has none.
            "the_error_string_for_a_reference_to_a_readonly_entity": READ_ONLY_MESSAGE,
            "a_reference_to_a_missing_entity": MISSING,
            "the_error_string_for_a_reference_to_a_missing_entity": MISSING_MESSAGE,
            "a_malformed_reference": MALFORMED,
            "the_error_string_for_a_malformed_reference": MALFORMED_MESSAGE,
        },
    },
    "Test_preflight": {
        "shared": {"a_traits_data_for_preflight": _preflight_hint(), "a_reference_for_preflight": MARA},
        "test_when_reference_is_read_only_then_access_error_is_returned": {
            "a_reference_to_a_readonly_entity": MARA_V1, "expected_error_message": READ_ONLY_MESSAGE,
        },
        "test_when_reference_malformed_then_malformed_entity_reference_error_returned": {
            "a_malformed_reference": MALFORMED, "expected_error_message": MALFORMED_MESSAGE,
        },
        "test_when_preflight_hint_invalid_then_invalid_preflight_hint_error_returned": {
            "an_invalid_traits_data_for_preflight": _preflight_hint("adapter"),
            "expected_error_message": f"{MARA} is a concept_art asset, but the traits say adapter",
        },
    },
    "Test_register": {
        "shared": {
            "a_reference_to_a_writable_entity": WRITABLE,
            "a_traitsdata_for_a_reference_to_a_writable_entity": _publish_data(),
            "a_reference_to_a_readonly_entity": MARA_V1,
            "the_error_string_for_a_reference_to_a_readonly_entity": READ_ONLY_MESSAGE,
            "a_malformed_reference": MALFORMED,
            "the_error_string_for_a_malformed_reference": MALFORMED_MESSAGE,
        },
    },
    "Test_getWithRelationship_All": {
        # What was made from mara v1: both adapter versions, as training data.
        "shared": {
            "a_reference": MARA_V1,
            "a_relationship_trait_set": {t.RelationshipTrait_v1.kId, t.OutputsTrait.kId},
            "a_relationship_traits_data_with_props": _outputs_relationship(role="training_data"),
            "an_entity_trait_set_to_filter_by": {t.KIND_TRAITS["adapter"], t.RecipeTrait.kId},
            "expected_related_entity_references": [f"{ADAPTER}?v=1", f"{ADAPTER}?v=2"],
            "a_reference_to_a_missing_entity": MISSING,
            "a_malformed_reference": MALFORMED,
        },
        "test_when_querying_missing_reference_then_resolution_error_is_returned": {
            "expected_error_message": MISSING_MESSAGE,
        },
        "test_when_querying_malformed_reference_then_malformed_reference_error_is_returned": {
            "expected_error_message": MALFORMED_MESSAGE,
        },
    },
}
