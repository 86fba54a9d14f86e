"""The signed heartbeat envelope (events.enrollment), the orchestrator's gate and the worker's
key files: what verifies, what is refused and why, and that arbitrary headers never crash."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import immutables
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.orchestrator.enrollment import REASONS, HeartbeatGate
from events.codec import encode
from events.enrollment import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    Signature,
    SignatureError,
    parse_public_key,
    read_signature,
    verify,
)
from events.errors import UnauthenticatedError
from events.heartbeat import Heartbeat
from projections.fold.state import Enrollment
from worker_agent import keys
from worker_agent.errors import ConfigError

NOW = datetime(2026, 12, 3, 0, 0, 0, tzinfo=UTC)


class Record(NamedTuple):
    value: bytes
    headers: Any


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("keys")
    keys.generate(d / "w1.key")
    keys.generate(d / "w2.key")
    return d


def _heartbeat(server_id: str = "w1", *, at: datetime = NOW, incarnation: str = "i1") -> Heartbeat:
    return Heartbeat(
        id=f"hb-{at.timestamp()}",
        source="worker",
        time=at,
        server_id=server_id,
        incarnation=incarnation,
        ip="127.0.0.1",
        port=8000,
        max_streams=4,
    )


def _enrolled(key_dir: Path, *, revoked: bool = False) -> immutables.Map[str, Enrollment]:
    public = (key_dir / "w1.key.pub").read_text().strip()
    record = Enrollment(
        server_id="w1",
        public_key=public,
        key_id=keys.load(key_dir / "w1.key").key_id,
        enrolled_at=NOW,
        revoked_at=NOW if revoked else None,
    )
    return immutables.Map({"w1": record})


def _signed(key_dir: Path, hb: Heartbeat, key: str = "w1.key") -> Record:
    value = encode(hb)
    return Record(value, keys.load(key_dir / key).headers(value))


def _gate(*, open_enrollment: bool = False) -> HeartbeatGate:
    return HeartbeatGate(open_enrollment=open_enrollment, max_age=timedelta(seconds=60))


def _reason(gate: HeartbeatGate, record: Record, hb: Heartbeat, enrolled: Any) -> str | None:
    try:
        gate.check(record, hb, enrolled, NOW)
    except UnauthenticatedError as exc:
        assert exc.reason in REASONS and exc.server_id == hb.server_id
        assert exc.type == "Heartbeat" and exc.field
        return exc.reason
    return None


# --- the envelope ----------------------------------------------------------------------------


def test_a_signature_verifies_only_for_the_same_bytes_and_key(key_dir: Path) -> None:
    value = encode(_heartbeat())
    headers = keys.load(key_dir / "w1.key").headers(value)
    sig = read_signature(headers)
    assert sig.key_id == keys.load(key_dir / "w1.key").key_id
    public = parse_public_key((key_dir / "w1.key.pub").read_text())
    other = parse_public_key((key_dir / "w2.key.pub").read_text())
    assert verify(public, value, sig.signature)
    assert not verify(public, value.replace(b'"w1"', b'"w2"'), sig.signature)
    assert not verify(other, value, sig.signature)


@pytest.mark.parametrize(
    ("headers", "reason", "header"),
    [
        (None, "unsigned", KEY_ID_HEADER),
        ([], "unsigned", KEY_ID_HEADER),
        ([(KEY_ID_HEADER, b"0123456789abcdef")], "unsigned", SIGNATURE_HEADER),
        ([(KEY_ID_HEADER, b"0123456789ABCDEF"), (SIGNATURE_HEADER, bytes(64))], "malformed",
         KEY_ID_HEADER),
        ([(KEY_ID_HEADER, b"0123456789abcdef"), (SIGNATURE_HEADER, bytes(63))], "malformed",
         SIGNATURE_HEADER),
        ([(KEY_ID_HEADER, b"0123456789abcdef")] * 2, "malformed", KEY_ID_HEADER),
        ([(KEY_ID_HEADER, None), (SIGNATURE_HEADER, bytes(64))], "malformed", KEY_ID_HEADER),
    ],
)  # fmt: skip
def test_bad_headers_are_one_error_naming_the_header(
    headers: Any, reason: str, header: str
) -> None:
    with pytest.raises(SignatureError) as caught:
        read_signature(headers)
    assert (caught.value.reason, caught.value.header) == (reason, header)
    assert header in str(caught.value)


HEADER_NAMES = st.sampled_from([KEY_ID_HEADER, SIGNATURE_HEADER, "other", ""]) | st.text()
HEADERS = st.lists(st.tuples(HEADER_NAMES, st.none() | st.binary(max_size=80)), max_size=5)


@settings(max_examples=500, deadline=None)
@given(headers=st.none() | HEADERS)
def test_the_envelope_decoder_never_crashes(headers: Any) -> None:
    try:
        sig = read_signature(headers)
    except SignatureError:
        return
    assert isinstance(sig, Signature) and len(sig.signature) == 64 and len(sig.key_id) == 16


@settings(max_examples=300, deadline=None)
@given(headers=st.none() | HEADERS, value=st.binary(max_size=300), open_=st.booleans())
def test_the_gate_refuses_arbitrary_records_with_a_reason_and_nothing_else(
    key_dir: Path, headers: Any, value: bytes, open_: bool
) -> None:
    gate = _gate(open_enrollment=open_)
    reason = _reason(gate, Record(value, headers), _heartbeat(), _enrolled(key_dir))
    assert reason in REASONS  # w1 is enrolled: only a valid signature of ``value`` passes


# --- the gate ---------------------------------------------------------------------------------


def test_an_enrolled_signed_heartbeat_counts_once(key_dir: Path) -> None:
    gate, hb, enrolled = _gate(), _heartbeat(), _enrolled(key_dir)
    record = _signed(key_dir, hb)
    assert _reason(gate, record, hb, enrolled) is None
    assert _reason(gate, record, hb, enrolled) == "replayed"
    later = _heartbeat(at=NOW + timedelta(seconds=1))
    assert _reason(gate, _signed(key_dir, later), later, enrolled) is None
    new_process = _heartbeat(at=NOW, incarnation="i2")  # another incarnation starts afresh
    assert _reason(gate, _signed(key_dir, new_process), new_process, enrolled) is None


def test_a_forged_heartbeat_is_refused_for_the_right_reason(key_dir: Path) -> None:
    """Another worker's id signed with the forger's own key: refused whether the headers name
    the forger's key (wrong_key) or the victim's (bad_signature)."""
    gate, hb, enrolled = _gate(), _heartbeat("w1"), _enrolled(key_dir)
    forged = _signed(key_dir, hb, key="w2.key")
    assert _reason(gate, forged, hb, enrolled) == "wrong_key"
    lying = [(KEY_ID_HEADER, enrolled["w1"].key_id.encode()), forged.headers[1]]
    assert _reason(gate, Record(forged.value, lying), hb, enrolled) == "bad_signature"
    other = _heartbeat("w1", incarnation="i9")  # the signature covers these bytes only
    assert _reason(gate, Record(encode(other), _signed(key_dir, hb).headers), other, enrolled) == (
        "bad_signature"
    )
    assert _reason(gate, Record(forged.value, None), hb, enrolled) == "unsigned"


def test_open_enrollment_admits_only_ids_without_a_key(key_dir: Path) -> None:
    stranger = _heartbeat("w3")
    record = Record(encode(stranger), None)
    assert _reason(_gate(), record, stranger, _enrolled(key_dir)) == "unenrolled"
    assert _reason(_gate(open_enrollment=True), record, stranger, _enrolled(key_dir)) is None
    hb = _heartbeat("w1")
    revoked = _enrolled(key_dir, revoked=True)
    for open_ in (False, True):
        assert _reason(_gate(open_enrollment=open_), _signed(key_dir, hb), hb, revoked) == (
            "revoked"
        )
        assert _reason(_gate(open_enrollment=open_), Record(encode(hb), None), hb,
                       _enrolled(key_dir)) == "unsigned"  # fmt: skip


def test_an_old_heartbeat_is_stale(key_dir: Path) -> None:
    old = _heartbeat(at=NOW - timedelta(seconds=61))
    assert _reason(_gate(), _signed(key_dir, old), old, _enrolled(key_dir)) == "stale"


# --- key files --------------------------------------------------------------------------------


def test_keygen_writes_a_private_file_only_its_owner_reads(tmp_path: Path) -> None:
    public = keys.generate(tmp_path / "k")
    assert public == tmp_path / "k.pub"
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert parse_public_key(public.read_text())
    with pytest.raises(ConfigError, match="already exists"):
        keys.generate(tmp_path / "k")


def test_a_key_file_others_can_read_or_not_a_key_is_refused(tmp_path: Path) -> None:
    keys.generate(tmp_path / "k")
    os.chmod(tmp_path / "k", 0o640)
    with pytest.raises(ConfigError, match=r"worker_key_file: .*readable by others"):
        keys.load(tmp_path / "k")
    (tmp_path / "junk").write_text("not a key")
    os.chmod(tmp_path / "junk", 0o600)
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key") as caught:
        keys.load(tmp_path / "junk")
    assert "not a key" not in str(caught.value)  # the content is never shown
    with pytest.raises(ConfigError, match="worker_key_file"):
        keys.load(tmp_path / "missing")
