"""Enrolling and revoking through ``decide``: the key is recorded, a revocation fails the live
incarnation and its streams move in the same cycle, and what cannot be revoked is refused."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from decide_sim import cluster, invariant_violations, replay_matches

from events import commands as cmd
from events import control as ev
from events.enrollment import key_id
from projections.fold.state import InstanceStatus


def _public_key(seed: int) -> str:
    private = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
    return base64.b64encode(private.public_key().public_bytes_raw()).decode()


def test_enrolling_records_the_key_and_who_asked() -> None:
    sim = cluster(4, 4, streams=4)
    c = sim.command(cmd.EnrollInstance, server_id="w0", public_key=_public_key(1))
    d = sim.cycle()
    enrolled = [e for e in d.events if isinstance(e, ev.InstanceEnrolled)]
    assert len(enrolled) == 1 and enrolled[0].causationid == c.command_id
    assert enrolled[0].key_id == key_id(_public_key(1)) and enrolled[0].enrolled_by == c.source
    record = sim.state.enrolled["w0"]
    assert (record.key_id, record.revoked_at) == (key_id(_public_key(1)), None)
    assert isinstance(d.events[-1], ev.CommandCompleted)


def test_the_same_key_again_writes_nothing_and_a_new_key_replaces_it() -> None:
    sim = cluster(4)
    sim.command(cmd.EnrollInstance, server_id="w0", public_key=_public_key(1))
    sim.cycle()
    sim.command(cmd.EnrollInstance, server_id="w0", public_key=_public_key(1))
    again = sim.cycle()
    assert [type(e) for e in again.events] == [ev.CommandCompleted]
    assert "already enrolled" in again.events[0].detail  # type: ignore[attr-defined]
    sim.command(cmd.EnrollInstance, server_id="w0", public_key=_public_key(2))
    sim.cycle()
    assert sim.state.enrolled["w0"].key_id == key_id(_public_key(2))


def test_a_revocation_fails_the_instance_and_moves_its_streams_in_the_same_cycle() -> None:
    sim = cluster(4, 4, streams=4)
    sim.command(cmd.EnrollInstance, server_id="w0", public_key=_public_key(1))
    sim.cycle()
    held = set(sim.state.desired_streams("w0"))
    assert held, "w0 should hold streams before it is revoked"
    c = sim.command(cmd.RevokeInstance, server_id="w0")
    d = sim.cycle()
    types = [type(e) for e in d.events]
    assert types[:2] == [ev.InstanceRevoked, ev.InstanceFailed], types
    failed = d.events[1]
    assert failed.reason == ev.Reasons.INSTANCE_REVOKED  # type: ignore[attr-defined]
    assert d.events[0].causationid == c.command_id
    assert sim.state.instances["w0"].status is InstanceStatus.FAILED
    assert sim.state.enrolled["w0"].revoked_at == sim.now
    moved = [e for e in d.events if isinstance(e, ev.StreamAssigned)]
    assert {e.stream_id for e in moved} == held and all(e.server_id == "w1" for e in moved)
    assert isinstance(d.events[-1], ev.CommandCompleted)
    assert invariant_violations(sim) == [] and replay_matches(sim)


def test_revoking_what_is_not_enrolled_or_already_revoked_is_refused() -> None:
    sim = cluster(4)
    sim.command(cmd.RevokeInstance, server_id="w0")
    d = sim.cycle()
    assert [type(e) for e in d.events] == [ev.CommandRejected]
    assert d.events[0].reason == "not_enrolled"  # type: ignore[attr-defined]
    sim.command(cmd.EnrollInstance, server_id="w9", public_key=_public_key(3))
    sim.cycle()
    sim.command(cmd.RevokeInstance, server_id="w9")  # a key whose server never registered
    assert [type(e) for e in sim.cycle().events] == [ev.InstanceRevoked, ev.CommandCompleted]
    sim.command(cmd.RevokeInstance, server_id="w9")
    d = sim.cycle()
    assert [type(e) for e in d.events] == [ev.CommandRejected]
