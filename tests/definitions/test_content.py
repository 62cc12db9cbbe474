"""A version's stored snapshot, read back typed: old snapshots keep loading, hashes stay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from registry.definitions.content import VersionContent, digest

# Snapshots as promptreg stored them before `VersionContent` existed (format 1): the six
# demo features and a Prompty file, keyed by the content hash each version recorded.
STORED = json.loads((Path(__file__).parent / "fixtures" / "snapshots-format1.json").read_text())


@pytest.mark.parametrize("stored_hash", sorted(STORED))
def test_a_stored_snapshot_loads_and_hashes_as_it_did(stored_hash: str) -> None:
    raw = STORED[stored_hash]
    content = VersionContent.model_validate(raw)
    assert content.as_dict() == raw
    assert content.content_hash == stored_hash == digest(raw)
    assert VersionContent.from_json(content.canonical_json()) == content


@pytest.mark.parametrize("stored_hash", sorted(STORED))
def test_the_definition_rebuilt_from_a_snapshot_makes_the_same_version(stored_hash: str) -> None:
    content = VersionContent.model_validate(STORED[stored_hash])
    definition = content.definition()
    assert definition.content_hash == stored_hash
    assert definition.policy == content.policy_model
    assert definition.compiled().render(definition.prompt.sample or {}) is not None


def test_the_prompty_snapshot_keeps_its_dialect_and_model_section() -> None:
    (prompty,) = [c for c in STORED.values() if c["prompt"]["dialect"] == "prompty"]
    content = VersionContent.model_validate(prompty)
    assert content.prompt.model is not None
    assert content.definition().prompt.dialect == "prompty"


def test_a_renamed_key_fails_where_the_snapshot_is_read() -> None:
    raw = dict(next(iter(STORED.values())))
    raw["prompt_file"] = raw.pop("policy_path")
    with pytest.raises(ValidationError) as caught:
        VersionContent.model_validate(raw)
    messages = str(caught.value)
    assert "policy_path" in messages and "prompt_file" in messages


def test_a_later_format_is_part_of_what_the_hash_covers() -> None:
    raw = next(iter(STORED.values()))
    later = VersionContent.model_validate({**raw, "format": 2})
    assert later.as_dict()["format"] == 2
    assert later.content_hash != VersionContent.model_validate(raw).content_hash
