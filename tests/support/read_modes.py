"""The ways a replay reads the log, for the integration tests that run each replay in all
of them (``projections.io.replay`` and ``projections.io.prefetch``)."""

from __future__ import annotations

from projections.io.replay import ReplayResult, ReplaySettings

#: name -> settings: this process reads and decodes everything; a child process only reads;
#: a child process reads and checks the records (``events._fast.handover``)
READ_MODES: dict[str, ReplaySettings] = {
    "in-process": ReplaySettings(prefetch="off"),
    "child-reader": ReplaySettings(prefetch="on", prefetch_decode=False),
    "child-decoder": ReplaySettings(prefetch="on"),
}


def check_reader(
    result: ReplayResult, settings: ReplaySettings, *, clean_chunks: bool = True
) -> None:
    """``result`` was read where ``settings`` say, and checked there when they say so (a
    chunk of the reader holding a bad record goes over raw: ``clean_chunks`` says whether
    the log has a chunk without one, so whether any was checked there)."""
    assert result.reader == ("child" if settings.prefetch == "on" else "process")
    if settings.prefetch == "on" and settings.prefetch_decode:
        assert (result.prechecked > 0) == clean_chunks
    else:
        assert result.prechecked == 0
