"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright),
against a running stack: real Kafka, a real orchestrator and three real workers, the
dashboard served by uvicorn as a child process. The page loads and shows the live
instances; a worker is killed and, without a reload or a poll, its card turns failed and
its streams appear on the others. Screenshots go to the test's own ``tmp_path``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect
from support.cluster import Cluster, open_cluster
from support.dashboard import chromium, serve_dashboard

from events import commands as cmd

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKERS = ("w1", "w2", "w3")
STREAMS = [f"cam-{i:02d}" for i in range(12)]
#: milliseconds the page may take to show a change (fail_after is 5 s in test clusters)
SHOWN_WITHIN = 30_000


@pytest.fixture
async def cluster(
    request: pytest.FixtureRequest, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    async with open_cluster(request, kafka_bootstrap, topic_prefix, tmp_path) as c:
        yield c


async def _chips(page: Page, server: str) -> set[str]:
    chips = page.locator(f'[data-instance="{server}"] .chip[data-stream]')
    return set(await chips.evaluate_all("nodes => nodes.map(n => n.dataset.stream)"))


async def _shown_streams(page: Page) -> int:
    counts = page.locator('[data-instance] [data-field="streams"]')
    return sum(int(t) for t in await counts.all_inner_texts())


async def test_the_page_shows_a_worker_die_and_its_streams_move(
    cluster: Cluster, tmp_path: Path
) -> None:
    c = cluster
    executable = chromium()  # before the stack: a missing browser fails at once, clearly
    c.start_orchestrator("o1")
    for w in WORKERS:
        c.start_worker(w, max_streams=10)
    await c.send([c.new_command(cmd.RegisterStream, stream_id=s) for s in STREAMS])
    await c.wait_until(lambda: c.running_once(STREAMS), 60, "12 streams run once each")

    def balanced() -> str:  # w1 starts first and takes 10; the balancer then moves 6
        loads = {w: len(c.streams_on(w)) for w in WORKERS}
        done = not c.running_once(STREAMS) and max(loads.values()) - min(loads.values()) <= 1
        return "" if done else f"loads {loads}"

    # the kill must not race the rebalance: a stream it moves off the victim in between
    # would count as a rebalance move, not as one of the failover's
    await c.wait_until(balanced, 60, "the streams spread over the three workers")
    url = await serve_dashboard(c)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1200})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url.removeprefix(url.rstrip("/"))))
            await page.goto(url)

            # the live instances, every stream running somewhere
            for w in WORKERS:
                card = page.locator(f'[data-instance="{w}"]')
                await expect(card).to_have_attribute("data-status", "active", timeout=SHOWN_WITHIN)
            await expect(page.locator("#connection")).to_have_text("live")
            await expect(page.locator('[data-count="running"] strong')).to_have_text("12")
            assert await _shown_streams(page) == len(STREAMS)
            await page.screenshot(path=tmp_path / "dashboard-before.png", full_page=True)

            victim = max(WORKERS, key=lambda w: len(c.streams_on(w)))

            async def agree() -> str:
                shown, runs = await _chips(page, victim), c.streams_on(victim)
                return "" if shown == runs and shown else f"page {shown}, worker {runs}"

            await c.wait_until(agree, 30, f"the page shows what {victim} runs")
            lost = await _chips(page, victim)
            down = page.locator('#churn [data-field="down"]')
            down_before = float(await down.inner_text())
            await page.evaluate("window.sameDocument = true")
            loaded = len(requests)
            c.kill(c.procs[victim])

            card = page.locator(f'[data-instance="{victim}"]')
            await expect(card).to_have_attribute("data-status", "failed", timeout=SHOWN_WITHIN)
            await expect(card.locator('[data-field="streams"]')).to_have_text(
                "0", timeout=SHOWN_WITHIN
            )
            for sid in sorted(lost):  # each lost stream now on exactly one survivor's card
                chip = page.locator(f'[data-instance]:not([data-instance="{victim}"]) '
                                    f'.chip[data-stream="{sid}"]')  # fmt: skip
                await expect(chip).to_have_count(1, timeout=SHOWN_WITHIN)
            await expect(page.locator('[data-count="running"] strong')).to_have_text(
                "12", timeout=SHOWN_WITHIN
            )
            failed_line = page.locator('#feed li[data-type="InstanceFailed"]')
            await expect(failed_line).to_contain_text(victim)
            await expect(page.locator("#timeline .mark-failovers")).to_have_count(1)
            # the churn line: the lost streams' moves by their reason; the stream-seconds
            # without an owner never go back (an outage this short may round to nothing: its
            # sum is checked in tests/unit/test_dashboard_view.py)
            reasons = page.locator('#churn [data-field="reasons"]')
            await expect(reasons).to_contain_text(f"instance_failed {len(lost)}")
            assert float(await down.inner_text()) >= down_before
            await page.screenshot(path=tmp_path / "dashboard-after.png", full_page=True)

            # it changed by itself: same document, and no request since it loaded (no poll,
            # no reload; only the one event stream, which stayed open)
            assert await page.evaluate("window.sameDocument") is True
            assert requests[loaded:] == [], requests[loaded:]
            assert "/dashboard/events" in requests[:loaded]
            assert not errors, errors
        finally:
            await browser.close()
    assert (tmp_path / "dashboard-after.png").stat().st_size > 10_000
