"""The checked-in docs/schemas/ and docs/events.md tables match the models.

jsonschema is not installed, so the example check below is structural (attribute names,
required sets, constants), not a full JSON Schema validation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from event_examples import all_examples

from events.base import Message
from events.codec import MESSAGE_TYPES, decode, encode
from events.control import Reasons
from events.schemas import REGENERATE, check_markdown, check_schemas

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "schemas"
EVENTS_MD = ROOT / "docs" / "events.md"


def test_schema_files_are_current() -> None:
    stale = check_schemas(SCHEMAS)
    assert not stale, f"docs/schemas is out of date ({', '.join(stale)}); run: {REGENERATE}"


def test_events_md_type_tables_are_current() -> None:
    assert not check_markdown(EVENTS_MD), (
        f"the generated section of docs/events.md is out of date; run: {REGENERATE}"
    )


def _check_object(value: dict[str, Any], schema: dict[str, Any], where: str) -> None:
    assert set(value) <= set(schema["properties"]), f"{where}: undeclared keys"
    assert set(schema["required"]) <= set(value), f"{where}: required keys missing"
    for key, sub in schema["properties"].items():
        if "const" in sub and key in value:
            assert value[key] == sub["const"], f"{where}.{key}"


@pytest.mark.parametrize("message", all_examples(), ids=lambda m: type(m).__name__)
def test_encoded_example_fits_its_schema(message: Message) -> None:
    name = type(message).__name__
    schema = json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8"))
    wire = orjson.loads(encode(message))
    _check_object(wire, schema, name)
    _check_object(wire["data"], schema["properties"]["data"], f"{name}.data")


def test_index_lists_every_type_with_its_version() -> None:
    index = json.loads((SCHEMAS / "index.json").read_text(encoding="utf-8"))["types"]
    assert {k: v["schemaversion"] for k, v in index.items()} == {
        k: cls.SCHEMA_VERSION for k, cls in MESSAGE_TYPES.items()
    }


def _json_blocks(text: str) -> list[Any]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]


def test_every_cloudevent_example_in_events_md_decodes() -> None:
    blocks = [b for b in _json_blocks(EVENTS_MD.read_text(encoding="utf-8")) if "type" in b]
    decoded = [decode(orjson.dumps(block)) for block in blocks if "specversion" in block]
    # one example per CloudEvents topic: events, commands, heartbeats, desired
    assert sorted(type(m).FAMILY for m in decoded) == ["command", "desired", "event", "heartbeat"]


def test_dead_letter_example_in_events_md_is_valid() -> None:
    from projections.io.dlq import DeadLetter

    blocks = _json_blocks(EVENTS_MD.read_text(encoding="utf-8"))
    (letter,) = [DeadLetter.model_validate(b) for b in blocks if "origin_topic" in b]
    raw = letter.raw_value()
    assert raw is not None and len(raw) == letter.value_size


def test_every_reason_is_documented() -> None:
    text = EVENTS_MD.read_text(encoding="utf-8")
    words = [v for k, v in vars(Reasons).items() if k.isupper()]
    assert [w for w in words if f"| `{w}` |" not in text] == []
