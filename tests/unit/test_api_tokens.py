"""The API's token file and the decision of who may do what (control_plane.api.tokens and
.auth): only hashes on disk, 0600, reloaded on change; 401/403 by scope; the default modes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from control_plane.api.auth import (
    ANONYMOUS,
    AuthConfigError,
    Authenticator,
    ForbiddenError,
    UnauthorizedError,
    authenticator,
)
from control_plane.api.tokens import (
    PREFIX,
    Scope,
    TokenFileError,
    TokenStore,
    create,
    digest,
    read_entries,
    revoke,
)
from control_plane.tools.options import OperatorSettings


def test_the_file_holds_hashes_only_and_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "tokens.json"
    token = create(path, name="ci", scope=Scope.operate)
    assert token.startswith(PREFIX) and len(token) > 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert token not in text and token[len(PREFIX) :] not in text
    assert digest(token) in text
    (entry,) = read_entries(path)
    assert (entry.name, entry.scope) == ("ci", Scope.operate)
    assert create(path, name="other", scope=Scope.read) != token  # random, not derived


def test_names_are_unique_and_revoke_removes(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    create(path, name="ci", scope=Scope.read)
    with pytest.raises(TokenFileError, match="name: a token named 'ci' exists"):
        create(path, name="ci", scope=Scope.admin)
    assert revoke(path, "ci") and not revoke(path, "ci")
    assert read_entries(path) == ()


def test_a_file_others_may_read_or_a_malformed_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    create(path, name="ci", scope=Scope.read)
    os.chmod(path, 0o640)
    with pytest.raises(TokenFileError, match="chmod 600"):
        read_entries(path)
    with pytest.raises(AuthConfigError, match="api_tokens_file"):
        authenticator(path, False, "127.0.0.1")
    os.chmod(path, 0o600)
    path.write_text('{"tokens": [{"name": "x"}]}')
    with pytest.raises(TokenFileError, match="malformed"):
        read_entries(path)


def test_the_store_sees_new_and_revoked_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    store = TokenStore(path)  # a missing file: no tokens yet
    assert store.lookup("spt_anything") is None
    token = create(path, name="ci", scope=Scope.read)
    assert store.lookup(token) is not None
    revoke(path, "ci")
    assert store.lookup(token) is None


def test_scopes_include_the_ones_below(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    tokens = {s: create(path, name=f"t-{s.name}", scope=s) for s in Scope}
    auth = Authenticator(TokenStore(path), anonymous_reads=False)
    for has, token in tokens.items():
        for needs in Scope:
            if has >= needs:
                assert auth.principal(token, needs).name == f"t-{has.name}"
            else:
                with pytest.raises(ForbiddenError) as refused:
                    auth.principal(token, needs)
                assert refused.value.status == 403
                assert f'scope="{needs.name}"' in refused.value.headers["WWW-Authenticate"]
    for token in (None, "spt_unknown", ""):
        with pytest.raises(UnauthorizedError) as denied:
            auth.principal(token, Scope.read)
        assert denied.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_anonymous_reads_read_only(tmp_path: Path) -> None:
    auth = Authenticator(TokenStore(tmp_path / "t.json"), anonymous_reads=True)
    assert auth.principal(None, Scope.read).name == ANONYMOUS
    with pytest.raises(UnauthorizedError):
        auth.principal(None, Scope.operate)


def test_without_a_token_file_only_loopback_runs_open(caplog: pytest.LogCaptureFixture) -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        auth = authenticator(None, False, host)
        assert auth.principal(None, Scope.admin).name == ANONYMOUS
        auth.announce()
    assert "API authentication is OFF" in caplog.text
    for host in ("0.0.0.0", "10.0.0.7", "api.example"):
        with pytest.raises(AuthConfigError, match="api_tokens_file: not set"):
            authenticator(None, False, host)


def test_the_cli_principal_is_the_setting_else_the_os_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMPLANE_PRINCIPAL", "ops-bob")
    assert OperatorSettings().who() == "ops-bob"
    monkeypatch.delenv("STREAMPLANE_PRINCIPAL")
    monkeypatch.setenv("USER", "carol")
    monkeypatch.setenv("LOGNAME", "carol")
    assert OperatorSettings().who() == "carol"
