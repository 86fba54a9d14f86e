"""events.schemas: the generated JSON Schemas, the file writer/checker and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from events.codec import MESSAGE_TYPES
from events.ids import ID_PATTERN
from events.schemas import (
    END_MARKER,
    START_MARKER,
    check_markdown,
    check_schemas,
    generate_schemas,
    main,
    render_markdown,
    write_markdown,
    write_schemas,
)


def test_one_schema_per_type_with_constant_type_and_version() -> None:
    schemas = generate_schemas()
    assert set(schemas) == set(MESSAGE_TYPES)
    for name, schema in schemas.items():
        props = schema["properties"]
        assert props["type"] == {"const": name}
        assert props["schemaversion"]["const"] == MESSAGE_TYPES[name].SCHEMA_VERSION
        assert schema["additionalProperties"] is False
        assert props["data"]["additionalProperties"] is False
        assert "type" not in props["data"]["properties"]


def test_envelope_and_data_are_split_like_the_codec() -> None:
    schemas = generate_schemas()
    assigned = schemas["StreamAssigned"]
    assert {"seq", "epoch"} <= set(assigned["required"])
    assert set(assigned["properties"]["data"]["required"]) == {
        "stream_id",
        "server_id",
        "incarnation",
        "reason",
    }
    heartbeat = schemas["Heartbeat"]
    assert "seq" not in heartbeat["properties"]
    assert heartbeat["properties"]["schemaversion"]["const"] == 2
    assert "StreamReport" in heartbeat["$defs"]
    assert schemas["LeaderElected"]["properties"]["subject"]["type"] == "null"


def test_id_fields_carry_the_id_pattern() -> None:
    data = generate_schemas()["StreamAssigned"]["properties"]["data"]["properties"]
    assert data["stream_id"]["pattern"] == ID_PATTERN
    assert data["server_id"]["pattern"] == ID_PATTERN


def test_write_then_check_is_clean_and_deterministic(tmp_path: Path) -> None:
    written = write_schemas(tmp_path)
    assert len(written) == len(MESSAGE_TYPES) + 1
    first = {p.name: p.read_bytes() for p in written}
    write_schemas(tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == first
    assert check_schemas(tmp_path) == []
    text = first["StreamAssigned.json"].decode()
    assert text.endswith("}\n") and text.startswith('{\n  "')
    assert list(json.loads(text)) == sorted(json.loads(text))
    assert json.loads(text)["title"] == "StreamAssigned"


def test_check_names_changed_missing_and_stale_files(tmp_path: Path) -> None:
    write_schemas(tmp_path)
    (tmp_path / "Heartbeat.json").write_text("{}\n")
    (tmp_path / "StreamAssigned.json").unlink()
    (tmp_path / "StreamTeleported.json").write_text("{}\n")
    assert check_schemas(tmp_path) == [
        "Heartbeat.json",
        "StreamAssigned.json",
        "StreamTeleported.json",
    ]
    write_schemas(tmp_path)
    assert check_schemas(tmp_path) == []
    assert not (tmp_path / "StreamTeleported.json").exists()


def test_check_of_a_missing_directory_names_everything(tmp_path: Path) -> None:
    assert len(check_schemas(tmp_path / "nowhere")) == len(MESSAGE_TYPES) + 1


def test_markdown_section_is_spliced_between_markers(tmp_path: Path) -> None:
    doc = tmp_path / "events.md"
    doc.write_text(f"# head\n\n{START_MARKER}\nstale-section\n{END_MARKER}\n\ntail\n")
    assert check_markdown(doc) == [str(doc)]
    write_markdown(doc)
    text = doc.read_text()
    assert text.startswith("# head\n") and text.endswith(f"{END_MARKER}\n\ntail\n")
    assert render_markdown() in text and "stale-section" not in text
    assert check_markdown(doc) == []
    for name in MESSAGE_TYPES:
        assert f"#### `{name}`" in text


def test_markdown_without_markers_is_not_current(tmp_path: Path) -> None:
    doc = tmp_path / "events.md"
    doc.write_text("# nothing generated here\n")
    assert check_markdown(doc) == [str(doc)]
    with pytest.raises(ValueError, match="markers"):
        write_markdown(doc)


def test_cli_writes_then_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, doc = tmp_path / "schemas", tmp_path / "events.md"
    doc.write_text(f"{START_MARKER}\n{END_MARKER}\n")
    args = ["--out", str(out), "--docs", str(doc)]
    assert main([*args, "--check"]) == 1
    assert "python -m events.schemas" in capsys.readouterr().err
    assert main(args) == 0
    assert main([*args, "--check"]) == 0
