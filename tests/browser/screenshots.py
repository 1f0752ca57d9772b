"""Screenshots of every page of the web console, for the README.

    python -m tests.browser.screenshots [--out docs/console]

Starts a private stack (its own Redis and database, web and one worker),
fills a tenant with a little of everything through the API and the console,
and saves one PNG per page. Needs what the browser tests need (`make
browser`); nothing is downloaded."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from devstack.processes import PROJECT_ROOT, RedisServer, Stack, create_database
from devstack.receiver import Receiver
from tests.browser.driver import Console, start_browser
from tests.integration.corpora import TOPICS

TENANT = "screenshots"
WIDTH = 1400


def _snap(console: Console, out: Path, name: str) -> None:
    height = console.driver.execute_script("return document.documentElement.scrollHeight")
    console.driver.set_window_size(WIDTH, min(max(int(height) + 40, 700), 2400))
    console.driver.execute_script("window.scrollTo(0, 0)")
    path = out / f"{name}.png"
    console.driver.save_screenshot(str(path))
    print(f"wrote {path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path}")


def _drive(console: Console, stack: Stack, key: str, receiver: Receiver, out: Path, files: Path) -> None:
    client = stack.client(key)
    client.ingest("topics", [{"id": topic, "text": text, "metadata": {"topic": topic}} for topic, text in TOPICS])

    console.open("")
    _snap(console, out, "key")

    console.enter_key(key)
    console.type("#new-collection-name", "notes")
    console.type("#new-collection-description", "field notes")
    console.click("#create-collection-submit")
    console.text_of("#collections-table tbody tr", "notes")

    (files / "lava.txt").write_text("Volcanoes erupt molten rock called lava.\n")
    (files / "knots.md").write_text("# Knots\nA bowline makes a fixed loop at the end of a rope.\n")
    (files / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage")
    console.go("upload/notes")
    console.find("#file-input").send_keys(
        "\n".join(str(files / name) for name in ("lava.txt", "knots.md", "broken.pdf"))
    )
    console.text_of(".upload .job-status", "succeeded")
    _snap(console, out, "upload")

    console.go("collections")
    console.text_of("#collections-table tbody tr", "notes")
    console.until(lambda: "2" in console.find("tr[data-collection='notes']").text, "the counts")
    _snap(console, out, "collections")

    console.go("search/topics")
    console.type("#search-query", "molten rock from a volcano")
    console.select("#search-pipeline", "dense")
    console.type("#search-top-k", "5")
    console.check("#search-answer")
    console.check("#search-compare")
    console.select("#search-pipeline-b", "keyword")
    console.click("#search-submit")
    console.shown("#hits-a")
    console.shown("#hits-b")
    _snap(console, out, "search")

    console.go("documents/notes/knots.md")
    console.shown("#doc-hash")
    _snap(console, out, "documents")

    console.go("webhooks")
    console.type("#webhook-url", receiver.url())
    console.check("#webhook-events input[value='ping']")
    console.type("#webhook-description", "local receiver")
    console.click("#create-webhook-submit")
    console.shown("#webhook-secret")
    console.click("tr.webhook .test-webhook")
    console.text_of("#deliveries-table tr.delivery[data-state='succeeded']", "ping")
    _snap(console, out, "webhooks")

    console.go("jobs")
    console.shown("tr.job")
    console.click("tr.job .show-json")
    _snap(console, out, "jobs")

    console.go("keys")
    console.type("#new-key-name", "reader")
    console.click("#create-key-submit")
    console.shown("#new-key-secret")
    _snap(console, out, "keys")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.browser.screenshots", description=__doc__)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "console")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.pop("REDIS_URL", None)
    os.environ.pop("DATABASE_URL", None)
    with tempfile.TemporaryDirectory(prefix="quarry-screenshots-") as scratch:
        work = Path(scratch)
        redis = RedisServer(work / "redis").start()
        url, drop = create_database(work)
        stack = Stack(work, url, redis, WEBHOOK_ALLOW_PRIVATE_NETWORKS="1", WEBHOOK_RETRY_SCHEDULE="0,1,1")
        receiver = Receiver().start()
        driver = None
        try:
            key = stack.create_key(TENANT)
            stack.start_web(wait=False)
            stack.start_worker()
            stack.wait_started()
            driver = start_browser()
            files = work / "files"
            files.mkdir()
            _drive(Console(driver, stack.base_url), stack, key, receiver, args.out, files)
        finally:
            if driver is not None:
                driver.quit()
            receiver.stop()
            stack.stop()
            redis.stop()
            drop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
