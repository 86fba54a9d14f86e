"""Scraping a process's ``/metrics`` in a test: ``s = await scrape(port)``, then
``s.value(name, **labels)`` (None when absent) or ``s.num(...)`` (which must be there)."""

from __future__ import annotations

import asyncio
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One scrape of an endpoint, by sample name and labels."""

    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def num(self, name: str, **labels: str) -> float:
        """The value, which must be there."""
        value = self.value(name, **labels)
        assert value is not None, f"no sample {name}{labels}"
        return value

    def total(self, name: str) -> float:
        """The sum over every label set of ``name`` (0 when it has no sample)."""
        return sum(v for (n, _), v in self.samples.items() if n == name)


async def scrape(port: int, host: str = "127.0.0.1") -> Scrape:
    """GET ``http://host:port/metrics`` (in a thread); an ``OSError`` if nothing listens."""

    def get() -> str:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    return Scrape(await asyncio.to_thread(get))
