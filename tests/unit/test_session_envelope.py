"""The heartbeat envelope 2 (events.session): session certificates and MACs, and that its
decoders turn arbitrary headers and bytes into one clear error, never a crash."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from events.enrollment import key_id, public_key_text
from events.session import (
    CERT_VERSION,
    MAC_HEADER,
    SESSION_HEADER,
    Certificate,
    Envelope,
    SignatureError,
    certificate,
    headers,
    mac_ok,
    parse_certificate,
    read_envelope,
    verify_certificate,
)

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
KID = key_id(public_key_text(KEY.public_key()))
K = bytes(range(100, 132))


def _cert(server_id: str = "w1", incarnation: str = "i1", mac_key: bytes = K) -> bytes:
    return certificate(
        KEY, key_id=KID, server_id=server_id, incarnation=incarnation, mac_key=mac_key
    )


def test_a_certificate_binds_its_key_to_one_incarnation_and_verifies_once_parsed() -> None:
    raw = _cert()
    cert = parse_certificate(raw)
    assert cert == Certificate(KID, "w1", "i1", K, raw[:-64], raw[-64:])
    assert raw[0] == CERT_VERSION and len(raw) == 1 + 16 + 1 + 2 + 1 + 2 + 32 + 64
    assert verify_certificate(KEY.public_key(), cert)
    assert not verify_certificate(OTHER.public_key(), cert)
    # any change of what it binds breaks the signature
    for at in (1, 18, 21, len(raw) - 65, len(raw) - 1):
        flipped = bytearray(raw)
        flipped[at] ^= 0x01
        try:
            changed = parse_certificate(bytes(flipped))
        except SignatureError:
            continue
        assert not verify_certificate(KEY.public_key(), changed)


def test_the_mac_covers_the_certificate_and_the_value() -> None:
    raw, value = _cert(), b'{"data": {"server_id": "w1"}}'
    hs = headers(raw, K, value)
    env = read_envelope(hs)
    assert env == Envelope(raw, hs[1][1]) and [h for h, _ in hs] == [SESSION_HEADER, MAC_HEADER]
    assert mac_ok(K, raw, value, env.mac)
    assert not mac_ok(K, raw, value + b" ", env.mac)
    assert not mac_ok(bytes(32), raw, value, env.mac)
    assert not mac_ok(K, _cert("w1", "i2"), value, env.mac)


def test_bad_arguments_make_no_certificate() -> None:
    for kwargs in (
        {"mac_key": bytes(31)},
        {"server_id": ""},
        {"server_id": "w" * 129},
        {"incarnation": "a b"},
    ):
        with pytest.raises(ValueError):
            _cert(**kwargs)


CERT = _cert()


@pytest.mark.parametrize(
    ("hs", "reason", "header", "says"),
    [
        (None, "unsigned", SESSION_HEADER, "missing"),
        ([("streamplane-key-id", b"0" * 16), ("streamplane-signature", bytes(64))], "unsigned",
         SESSION_HEADER, "envelope 1"),
        ([(SESSION_HEADER, CERT)], "unsigned", MAC_HEADER, "missing"),
        ([(SESSION_HEADER, CERT), (MAC_HEADER, bytes(31))], "malformed", MAC_HEADER, "32 bytes"),
        ([(SESSION_HEADER, CERT)] * 2, "malformed", SESSION_HEADER, "twice"),
        ([(MAC_HEADER, None), (MAC_HEADER, bytes(32))], "malformed", MAC_HEADER, "twice"),
    ],
)  # fmt: skip
def test_bad_headers_are_one_error_naming_the_header(
    hs: Any, reason: str, header: str, says: str
) -> None:
    with pytest.raises(SignatureError) as caught:
        read_envelope(hs)
    assert (caught.value.reason, caught.value.header) == (reason, header)
    assert header in str(caught.value) and says in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"", "version nothing"),
        (b"\x01" + CERT[1:], "version 1"),
        (CERT[:10], "key id"),
        (CERT[:1] + b"0123456789ABCDEF" + CERT[17:], "key id"),
        (CERT[:17] + b"\x00" + CERT[18:], "server_id"),
        (CERT[:17] + b"\xff" + CERT[18:], "server_id"),
        (CERT[:20], "incarnation"),
        (CERT[:-1], "bytes, expected"),
        (CERT + b"x", "bytes, expected"),
    ],
)
def test_a_malformed_certificate_says_what_is_wrong(raw: bytes, says: str) -> None:
    with pytest.raises(SignatureError) as caught:
        parse_certificate(raw)
    assert caught.value.reason == "malformed" and caught.value.header == SESSION_HEADER
    assert says in str(caught.value)


def test_no_error_quotes_the_mac_key() -> None:
    """The certificate carries K: an error message must never show its bytes."""
    for raw in (CERT[:-1], CERT + b"x", b"\x07" + CERT[1:]):
        with pytest.raises(SignatureError) as caught:
            parse_certificate(raw)
        assert K.hex() not in str(caught.value) and repr(K) not in str(caught.value)


NAMES = st.sampled_from([SESSION_HEADER, MAC_HEADER, "streamplane-key-id", "", "x"]) | st.text()
HEADERS = st.lists(st.tuples(NAMES, st.none() | st.binary(max_size=200)), max_size=5)


@settings(max_examples=500, deadline=None)
@given(hs=st.none() | HEADERS)
def test_the_envelope_decoder_never_crashes(hs: Any) -> None:
    try:
        env = read_envelope(hs)
    except SignatureError as exc:
        assert exc.reason in ("unsigned", "malformed") and exc.header in (SESSION_HEADER,
                                                                          MAC_HEADER)  # fmt: skip
        return
    assert isinstance(env, Envelope) and len(env.mac) == 32


def _mutations() -> st.SearchStrategy[bytes]:
    def mutate(data: tuple[int, int, bytes]) -> bytes:
        at, cut, junk = data
        at = at % (len(CERT) + 1)
        return CERT[:at] + junk + CERT[at + cut :]

    return st.tuples(st.integers(0, 300), st.integers(0, 8), st.binary(max_size=4)).map(mutate)


@settings(max_examples=1000, deadline=None)
@given(raw=st.binary(max_size=300) | _mutations())
def test_the_certificate_decoder_never_crashes(raw: bytes) -> None:
    try:
        cert = parse_certificate(raw)
    except SignatureError as exc:
        assert exc.reason == "malformed" and exc.header == SESSION_HEADER
        return
    assert len(cert.mac_key) == 32 and len(cert.signature) == 64 and len(cert.key_id) == 16
    assert cert.signed + cert.signature == raw
    assert verify_certificate(KEY.public_key(), cert) == (raw == CERT)
