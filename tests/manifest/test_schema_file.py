"""The schema file: valid, shipped, complete, and the fast check agrees with jsonschema."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from runner import cli
from runner.core.model import SIZE_POLICIES
from runner.emulator import EmulatorSettings
from runner.manifest.fastcheck import compile_schema
from runner.manifest.schema import dereferenced, load_schema, schema_text
from runner.wire.payload import RENAMEABLE
from tests.helpers.manifest_fuzz import BASE, VALUES, _paths, _set

SHOT_FIELDS = {"prompt", "multi_prompt", "duration", "resolution", "aspect_ratio",
               "generate_audio", "images", "elements", "start_frame", "end_frame", "takes",
               "tags", "extra"}
# Every emulator setting a manifest may give: all of EmulatorSettings but the keys (api_key,
# and accounts, a mapping of keys), which never go in a manifest. The schema lacked
# estimate_factor and six more the README listed.
EMULATOR_KEYS = {f.name for f in dataclasses.fields(EmulatorSettings)} - {"api_key",
                                                                         "accounts"}


def test_schema_is_valid_draft_2020_12() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_schemas_dir_is_a_relative_link_to_the_packaged_file(repo_root: Path) -> None:
    link = repo_root / "schemas" / "manifest.schema.json"
    assert link.is_symlink()
    assert os.readlink(link) == "../runner/data/manifest.schema.json"
    assert link.read_text() == schema_text()


def test_shape_covers_every_key() -> None:
    schema = dereferenced()
    props = schema["properties"]
    assert set(props) == {"version", "name", "output_dir", "api", "budget", "verify", "state",
                          "vars", "assets", "elements", "defaults", "shots"}
    assert set(props["state"]["properties"]) == {"url"}
    assert set(props["verify"]["properties"]["size"]["enum"]) == set(SIZE_POLICIES)
    shot = props["shots"]["items"]["properties"]
    assert set(shot) == SHOT_FIELDS | {"id", "matrix", "after"}
    assert set(props["defaults"]["properties"]) == SHOT_FIELDS
    assert set(shot["matrix"]["properties"]) == SHOT_FIELDS - {"takes"}
    api = props["api"]["properties"]
    assert set(api) == {"base_url", "files_url", "api_key_env", "model", "concurrency",
                        "submit_rate", "downloads", "wire", "emulator", "provider",
                        "download_timeout", "min_download_rate", "accounts"}
    assert set(api["accounts"]["items"]["properties"]) == {"name", "api_key_env", "concurrency",
                                                           "submit_rate", "access_key_env"}
    assert set(api["emulator"]["properties"]) == EMULATOR_KEYS
    assert set(api["emulator"]["properties"]["error_rates"]["properties"]) == {
        "429", "500", "502", "503"}
    assert set(props["budget"]["properties"]["rates"]["properties"]) == {
        "720p", "1080p", "4k", "audio"}
    assert set(api["wire"]["propertyNames"]["enum"]) == RENAMEABLE


def _objects(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append((path, node))
        for key, value in node.items():
            found.extend(_objects(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_objects(value, f"{path}/{index}"))
    return found


def test_objects_refuse_unknown_keys_and_document_every_property() -> None:
    for path, node in _objects(load_schema()):
        if path.endswith("/extra"):
            continue
        assert node.get("additionalProperties") is False, path
        for name, prop in node["properties"].items():
            target = prop
            if "$ref" in prop and "description" not in prop:
                target = load_schema()["$defs"][prop["$ref"].rsplit("/", 1)[-1]]
            assert target.get("description"), f"{path}/{name}"


def test_schema_command_prints_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == load_schema()


def test_fastcheck_refuses_keywords_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="oneOf"):
        compile_schema({"oneOf": [{"type": "string"}]})


FAST = compile_schema(dereferenced())
SLOW = Draft202012Validator(load_schema())


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_fastcheck_agrees_with_jsonschema(data: st.DataObject) -> None:
    mutated = copy.deepcopy(BASE)
    for _ in range(data.draw(st.integers(0, 3))):
        path = data.draw(st.sampled_from(_paths(mutated)[1:]))
        _set(mutated, path, data.draw(VALUES), data.draw(st.sampled_from(
            ["replace", "delete", "rename"])))
    assert FAST(mutated) == SLOW.is_valid(mutated)
