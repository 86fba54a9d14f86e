"""The orchestrator's gate over envelope 2 (session certificates + MACs) and the worker's key
files: what counts, what is refused and why, that a certificate is verified once, and that
arbitrary headers never crash the gate."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import immutables
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.orchestrator.enrollment import REASONS, HeartbeatGate
from events.codec import encode
from events.enrollment import parse_public_key
from events.errors import UnauthenticatedError
from events.heartbeat import Heartbeat
from events.session import MAC_HEADER, SESSION_HEADER
from projections.fold.state import Enrollment
from worker_agent import keys
from worker_agent.errors import ConfigError
from worker_agent.settings import WorkerSettings
from worker_agent.transport import KafkaTransport

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


def _enrollment(key_dir: Path, server_id: str, *, revoked: bool = False) -> Enrollment:
    return Enrollment(
        server_id=server_id,
        public_key=(key_dir / f"{server_id}.key.pub").read_text().strip(),
        key_id=keys.load(key_dir / f"{server_id}.key").key_id,
        enrolled_at=NOW,
        revoked_at=NOW if revoked else None,
    )


def _enrolled(key_dir: Path, *, revoked: bool = False) -> immutables.Map[str, Enrollment]:
    return immutables.Map({"w1": _enrollment(key_dir, "w1", revoked=revoked)})


def _session(key_dir: Path, key: str, server_id: str, incarnation: str) -> keys.Session:
    return keys.load(key_dir / key).session(server_id, incarnation)


def _signed(
    key_dir: Path, hb: Heartbeat, key: str = "w1.key", session: keys.Session | None = None
) -> Record:
    """``hb`` in envelope 2: a fresh session of ``key`` for its id and incarnation, unless
    ``session`` is given (a worker reuses its session for every heartbeat)."""
    value = encode(hb)
    session = session or _session(key_dir, key, hb.server_id, hb.incarnation)
    return Record(value, session.headers(value))


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


def _later(hb: Heartbeat, seconds: int, **changes: Any) -> Heartbeat:
    return hb.model_copy(update={"time": hb.time + timedelta(seconds=seconds), **changes})


HEADER_NAMES = st.sampled_from([SESSION_HEADER, MAC_HEADER, "other", ""]) | st.text()
HEADERS = st.lists(st.tuples(HEADER_NAMES, st.none() | st.binary(max_size=200)), max_size=5)


@settings(max_examples=300, deadline=None)
@given(headers=st.none() | HEADERS, value=st.binary(max_size=300), open_=st.booleans())
def test_the_gate_refuses_arbitrary_records_with_a_reason_and_nothing_else(
    key_dir: Path, headers: Any, value: bytes, open_: bool
) -> None:
    gate = _gate(open_enrollment=open_)
    reason = _reason(gate, Record(value, headers), _heartbeat(), _enrolled(key_dir))
    assert reason in REASONS  # w1 is enrolled: only a certified session's MAC passes


# --- the gate ---------------------------------------------------------------------------------


def test_an_enrolled_heartbeat_counts_once_and_its_certificate_is_verified_once(
    key_dir: Path,
) -> None:
    gate, hb, enrolled = _gate(), _heartbeat(), _enrolled(key_dir)
    session = _session(key_dir, "w1.key", "w1", "i1")
    record = _signed(key_dir, hb, session=session)
    assert _reason(gate, record, hb, enrolled) is None
    assert _reason(gate, record, hb, enrolled) == "replayed"
    for n in range(1, 4):
        later = _later(hb, n)
        assert _reason(gate, _signed(key_dir, later, session=session), later, enrolled) is None
    assert gate.verifications == 1  # the steady state: one HMAC each, no signature
    new_process = _heartbeat(at=NOW, incarnation="i2")  # another incarnation starts afresh
    assert _reason(gate, _signed(key_dir, new_process), new_process, enrolled) is None
    assert gate.verifications == 2
    # a new orchestrator (after a failover) verifies each certificate once
    fresh = _gate()
    later = _later(new_process, 1)
    assert _reason(fresh, _signed(key_dir, later), later, enrolled) is None
    assert fresh.verifications == 1


def test_a_forged_heartbeat_is_refused_for_the_right_reason(key_dir: Path) -> None:
    """Another worker's id with the forger's own key: refused whether its certificate names
    the forger's key (wrong_key), lies about it (bad_signature), or is the forger's own
    certificate used for the victim's id (session_mismatch)."""
    gate, hb, enrolled = _gate(), _heartbeat("w1"), _enrolled(key_dir)
    assert _reason(gate, _signed(key_dir, hb, key="w2.key"), hb, enrolled) == "wrong_key"
    forger = keys.load(key_dir / "w2.key")
    lying = keys.WorkerKey(forger.private, keys.load(key_dir / "w1.key").key_id)
    assert _reason(gate, _signed(key_dir, hb, session=lying.session("w1", "i1")), hb,
                   enrolled) == "bad_signature"  # fmt: skip
    own = _session(key_dir, "w2.key", "w2", "i1")
    both = immutables.Map({**enrolled, "w2": _enrollment(key_dir, "w2")})
    assert _reason(gate, _signed(key_dir, hb, session=own), hb, both) == "session_mismatch"
    assert _reason(gate, Record(encode(hb), None), hb, enrolled) == "unsigned"
    assert gate.verifications == 1  # only the lying certificate reached the signature


def test_a_valid_certificate_with_a_bad_mac_or_for_another_id_is_refused(key_dir: Path) -> None:
    """w1's certificate replayed (it is in every w1 heartbeat) by a writer that lacks its MAC
    key, and w1's certificate used for w2's id or another incarnation: nothing counts."""
    gate, enrolled = (
        _gate(),
        immutables.Map({"w1": _enrollment(key_dir, "w1"), "w2": _enrollment(key_dir, "w2")}),
    )
    session = _session(key_dir, "w1.key", "w1", "i1")
    hb = _heartbeat("w1")
    assert _reason(gate, _signed(key_dir, hb, session=session), hb, enrolled) is None
    for n, cached in ((1, True), (2, False)):  # with the certificate verified, and unverified
        gate = gate if cached else _gate()
        forged = _later(hb, n, ip="10.6.6.6")
        value = encode(forged)
        bad = [(SESSION_HEADER, session.certificate), (MAC_HEADER, bytes(32))]
        assert _reason(gate, Record(value, bad), forged, enrolled) == "bad_mac"
        stolen = session.headers(encode(_later(hb, n)))  # a real MAC, of other bytes
        assert _reason(gate, Record(value, stolen), forged, enrolled) == "bad_mac"
        other_id = _later(hb, n, server_id="w2")
        assert _reason(gate, _signed(key_dir, other_id, session=session), other_id,
                       enrolled) == "session_mismatch"  # fmt: skip
        other_inc = _later(hb, n, incarnation="i9")
        assert _reason(gate, _signed(key_dir, other_inc, session=session), other_inc,
                       enrolled) == "session_mismatch"  # fmt: skip
    later = _later(hb, 5)
    assert _reason(gate, _signed(key_dir, later, session=session), later, enrolled) is None


def test_revocation_and_a_new_key_are_checked_before_the_cache(key_dir: Path) -> None:
    gate, hb = _gate(), _heartbeat("w1")
    session = _session(key_dir, "w1.key", "w1", "i1")
    assert _reason(gate, _signed(key_dir, hb, session=session), hb, _enrolled(key_dir)) is None
    later = _later(hb, 1)
    record = _signed(key_dir, later, session=session)
    assert _reason(gate, record, later, _enrolled(key_dir, revoked=True)) == "revoked"
    # re-enrolled with the same key: the certificate is verified again, then counts
    re_enrolled = replace(_enrollment(key_dir, "w1"), enrolled_at=NOW + timedelta(seconds=1))
    again = immutables.Map({"w1": re_enrolled})
    assert _reason(gate, record, later, again) is None
    assert gate.verifications == 2
    # w1's id now enrolled with w2's key (a rotation): the old session no longer counts
    rotated = immutables.Map({"w1": replace(_enrollment(key_dir, "w2"), server_id="w1")})
    later = _later(hb, 2)
    assert _reason(gate, _signed(key_dir, later, session=session), later, rotated) == "wrong_key"


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


def test_a_session_never_shows_its_mac_key(key_dir: Path) -> None:
    session = _session(key_dir, "w1.key", "w1", "i1")
    assert session.mac_key.hex() not in repr(session) and "mac_key" not in repr(session)
    assert parse_public_key((key_dir / "w1.key.pub").read_text())


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


def test_the_worker_certifies_one_session_per_incarnation(
    key_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The transport (no Kafka needed to build the headers): one certificate per incarnation,
    a MAC per record, and the MAC key in no log line."""
    settings = WorkerSettings(server_id="w1", worker_key_file=key_dir / "w1.key")
    with caplog.at_level("DEBUG"):
        transport = KafkaTransport(settings)
        gate, enrolled = _gate(), _enrolled(key_dir)
        for n, incarnation in enumerate(("i1", "i1", "i2")):
            hb = _heartbeat(at=NOW + timedelta(seconds=n), incarnation=incarnation)
            value = encode(hb)
            headers = transport._headers(value, incarnation)
            assert headers is not None
            assert _reason(gate, Record(value, headers), hb, enrolled) is None
    assert gate.verifications == 2
    session = transport._session
    assert session is not None and session.incarnation == "i2"
    assert "session certificate for incarnation i2" in caplog.text
    assert session.mac_key.hex() not in caplog.text and str(session.mac_key) not in caplog.text
