"""JSON Schemas of the wire form, and the generated type tables of docs/events.md.

One JSON Schema (draft 2020-12) per type in :data:`events.MESSAGE_TYPES` describes the whole
Kafka record value: the CloudEvents envelope with ``type`` and ``schemaversion`` as constants,
and ``data`` = the type's own fields, taken from pydantic's ``model_json_schema``.

    python -m events.schemas            # regenerate docs/schemas/ and docs/events.md's tables
    python -m events.schemas --check    # exit 1 and name what is out of date

Output is deterministic (sorted keys, 2-space indent, trailing newline) so a test can compare.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from events.base import ENVELOPE_FIELDS, Message
from events.codec import CONTENT_TYPE, MESSAGE_TYPES, SPECVERSION
from events.ids import ID_PATTERN, Reason
from events.topics import ALERTS, COMMANDS, DESIRED, EVENTS, HEARTBEATS, TopicSpec

DIALECT = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_OUT = "docs/schemas"
DEFAULT_DOCS = "docs/events.md"
INDEX = "index.json"
START_MARKER = "<!-- generated:types:start -->"
END_MARKER = "<!-- generated:types:end -->"
REGENERATE = "python -m events.schemas"

FAMILY_TOPICS: dict[str, TopicSpec] = {
    "event": EVENTS,
    "command": COMMANDS,
    "heartbeat": HEARTBEATS,
    "desired": DESIRED,
    "alert": ALERTS,
}
_FAMILY_TITLES = {
    "event": "Control events",
    "command": "Commands",
    "heartbeat": "Heartbeats",
    "desired": "Desired sets",
    "alert": "Alerts",
}
_NAMED_PATTERNS = {
    ID_PATTERN: "id",
    str(TypeAdapter(Reason).json_schema()["pattern"]): "reason",
}
_ATTR_DOCS = {
    "specversion": "CloudEvents spec version, always 1.0.",
    "id": "Unique id of this message (producers: a UUID); duplicates are the same message.",
    "source": "Who wrote it, e.g. streamplane/orchestrator or streamplane/worker/<server_id>.",
    "time": "When it happened: RFC 3339 with an offset; streamplane writes UTC with Z.",
    "datacontenttype": "Always application/json (may be omitted).",
    "subject": "The entity the message is about (a copy of a data field), or null.",
    "schemaversion": "Version of this type's data; readers upcast older versions.",
    "causationid": "Id of the message (command, event) that caused this one, or null.",
    "correlationid": "Id shared by every message of one operation, or null.",
    "seq": "Position in the control log: gapless, previous + 1.",
    "epoch": "Leader term that wrote it; events of an older epoch have no effect.",
    "principal": "Who issued the command (an API token's name, the CLI's user); absent if unknown.",
}


def _topic_name(cls: type[Message]) -> str:
    return f"streamplane.{FAMILY_TOPICS[cls.FAMILY].suffix}"


def _subject_schema(cls: type[Message]) -> dict[str, Any]:
    if cls.SUBJECT_FIELD is None:
        return {"type": "null", "description": "Always null for this type."}
    return {"type": "string", "description": f"A copy of data.{cls.SUBJECT_FIELD}."}


def message_schema(cls: type[Message]) -> dict[str, Any]:
    """The JSON Schema of ``cls``'s wire form (a CloudEvents structured-mode record)."""
    model = cls.model_json_schema(mode="validation")
    props: dict[str, Any] = model["properties"]
    required: list[str] = model.get("required", [])
    data_fields = [k for k in props if k not in ENVELOPE_FIELDS and k != "type"]
    data = {
        "type": "object",
        "additionalProperties": False,
        "properties": {k: props[k] for k in data_fields},
        "required": [k for k in required if k in data_fields],
    }
    envelope: dict[str, Any] = {
        "specversion": {"const": SPECVERSION},
        "id": props["id"],
        "source": props["source"],
        "type": {"const": cls.__name__},
        "time": props["time"],
        "datacontenttype": {"const": CONTENT_TYPE},
        "subject": _subject_schema(cls),
        "schemaversion": {"const": cls.SCHEMA_VERSION},
        "causationid": props["causationid"],
        "correlationid": props["correlationid"],
    }
    envelope.update({k: props[k] for k in ("seq", "epoch", "principal") if k in props})
    for name, doc in _ATTR_DOCS.items():
        if name in envelope:
            envelope[name] = {"description": doc, **envelope[name]}
    envelope["data"] = data
    top = ["specversion", "id", "source", "type", "time", "schemaversion", "data"]
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "title": cls.__name__,
        "description": model.get("description", cls.__name__),
        "type": "object",
        "additionalProperties": False,
        "properties": envelope,
        "required": top + [k for k in ("seq", "epoch") if k in required],
        "x-family": cls.FAMILY,
        "x-topic": _topic_name(cls),
    }
    if "$defs" in model:
        schema["$defs"] = model["$defs"]
    return schema


def generate_schemas() -> dict[str, dict[str, Any]]:
    """One wire-form JSON Schema per message type, keyed by type name."""
    return {name: message_schema(cls) for name, cls in MESSAGE_TYPES.items()}


def _index() -> dict[str, Any]:
    types = {
        name: {
            "file": f"{name}.json",
            "family": cls.FAMILY,
            "topic": _topic_name(cls),
            "schemaversion": cls.SCHEMA_VERSION,
        }
        for name, cls in MESSAGE_TYPES.items()
    }
    return {"$comment": f"generated by `{REGENERATE}`; do not edit", "types": types}


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_files() -> dict[str, str]:
    """File name -> exact text of every file of the schema directory."""
    files = {f"{name}.json": _dump(schema) for name, schema in generate_schemas().items()}
    files[INDEX] = _dump(_index())
    return files


def write_schemas(directory: str | Path) -> list[Path]:
    """Write every schema and ``index.json`` into ``directory``; remove stale ``*.json``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    files = render_files()
    for stale in out.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, text in sorted(files.items()):
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def check_schemas(directory: str | Path) -> list[str]:
    """Names of the files in ``directory`` that differ, are missing or are stale."""
    out = Path(directory)
    files = render_files()
    bad = [
        name
        for name, text in files.items()
        if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != text
    ]
    if out.is_dir():
        bad += [p.name for p in out.glob("*.json") if p.name not in files]
    return sorted(bad)


# --- docs/events.md ----------------------------------------------------------------------


def _type_text(s: dict[str, Any]) -> str:
    """A short, language-neutral name for a JSON Schema fragment."""
    if "$ref" in s:
        name = s["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in s:
        return " or ".join(_type_text(alt) for alt in s["anyOf"])
    if "enum" in s:
        return " \\| ".join(f"`{v}`" for v in s["enum"])
    kind = s.get("type", "any")
    if kind == "array":
        return f"array of {_type_text(s.get('items', {}))}"
    if kind == "object" and isinstance(s.get("additionalProperties"), dict):
        return f"object of {_type_text(s['additionalProperties'])}"
    if kind == "object" and s.get("patternProperties"):
        keys = _type_text({"type": "string", "pattern": next(iter(s["patternProperties"]))})
        values = _type_text(next(iter(s["patternProperties"].values())))
        return f"object ({keys} → {values})"
    if kind == "string" and s.get("pattern") in _NAMED_PATTERNS:
        return _NAMED_PATTERNS[s["pattern"]]
    if kind == "string" and "format" in s:
        return f"string ({s['format']})"
    return str(kind)


def _limits(s: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for alt in s.get("anyOf", [s]):
        if "minimum" in alt:
            out.append(f"≥ {alt['minimum']}")
        if "maximum" in alt:
            out.append(f"≤ {alt['maximum']}")
        if "maxLength" in alt and alt.get("pattern") not in _NAMED_PATTERNS:
            out.append(f"≤ {alt['maxLength']} chars")
        if "maxItems" in alt:
            out.append(f"≤ {alt['maxItems']} items")
        if alt.get("pattern") and alt["pattern"] not in _NAMED_PATTERNS:
            out.append(f"pattern `{alt['pattern']}`")
    return out


def _field_rows(props: dict[str, Any], required: Sequence[str]) -> list[str]:
    rows = ["| field | type | required | default | limits |", "|---|---|---|---|---|"]
    for name, s in props.items():
        default = "" if "default" not in s else f"`{json.dumps(s['default'])}`"
        rows.append(
            f"| `{name}` | {_type_text(s)} | {'yes' if name in required else 'no'} "
            f"| {default} | {', '.join(_limits(s))} |"
        )
    return rows


def _first_paragraph(text: str) -> str:
    return " ".join(text.split("\n\n", 1)[0].split())


def render_markdown() -> str:
    """The generated section of docs/events.md (between the markers, markers excluded)."""
    schemas = generate_schemas()
    lines: list[str] = [f"<!-- generated by `{REGENERATE}`; do not edit by hand -->", ""]
    defs: dict[str, Any] = {}
    for family, title in _FAMILY_TITLES.items():
        lines += [f"### {title} (`streamplane.{FAMILY_TOPICS[family].suffix}`)", ""]
        for name, cls in MESSAGE_TYPES.items():
            if cls.FAMILY != family:
                continue
            schema = schemas[name]
            data = schema["properties"]["data"]
            subject = f"`data.{cls.SUBJECT_FIELD}`" if cls.SUBJECT_FIELD else "null"
            lines += [f"#### `{name}`", ""]
            if schema["description"] != name:
                lines += [_first_paragraph(schema["description"]), ""]
            lines += [f"schemaversion {cls.SCHEMA_VERSION}; subject {subject}.", ""]
            if data["properties"]:
                lines += [*_field_rows(data["properties"], data["required"]), ""]
            else:
                lines += ["No data fields: `data` is `{}`.", ""]
            defs.update(schema.get("$defs", {}))
    lines += ["### Value types", ""]
    for name in sorted(defs):
        d = defs[name]
        lines += [f"#### `{name}`", ""]
        if "description" in d:
            lines += [_first_paragraph(d["description"]), ""]
        if "enum" in d:
            lines += [f"One of {_type_text(d)}.", ""]
        else:
            lines += [*_field_rows(d["properties"], d.get("required", [])), ""]
    return "\n".join(lines)


def _splice(text: str, generated: str) -> str:
    head, sep, rest = text.partition(START_MARKER)
    _, sep2, tail = rest.partition(END_MARKER)
    if not sep or not sep2:
        raise ValueError(f"markers {START_MARKER} / {END_MARKER} not found")
    return f"{head}{START_MARKER}\n{generated}\n{END_MARKER}{tail}"


def write_markdown(path: str | Path) -> None:
    """Replace the generated section of the Markdown file at ``path``."""
    p = Path(path)
    p.write_text(_splice(p.read_text(encoding="utf-8"), render_markdown()), encoding="utf-8")


def check_markdown(path: str | Path) -> list[str]:
    """``[path]`` when its generated section is missing or out of date, else ``[]``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        current = _splice(text, render_markdown()) == text
    except (OSError, ValueError):
        current = False
    return [] if current else [str(path)]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m events.schemas [--check] [--out DIR] [--docs FILE]``."""
    parser = argparse.ArgumentParser(prog="python -m events.schemas", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report what is stale")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"schema directory ({DEFAULT_OUT})")
    parser.add_argument("--docs", default=DEFAULT_DOCS, help=f"Markdown file ({DEFAULT_DOCS})")
    args = parser.parse_args(argv)
    if args.check:
        stale = check_schemas(args.out) + check_markdown(args.docs)
        for name in stale:
            print(f"out of date: {name}", file=sys.stderr)
        if stale:
            print(f"regenerate with: {REGENERATE}", file=sys.stderr)
        return 1 if stale else 0
    written = write_schemas(args.out)
    print(f"wrote {len(written)} files to {args.out}")
    if Path(args.docs).is_file():
        write_markdown(args.docs)
        print(f"updated {args.docs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
