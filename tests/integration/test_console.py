"""The web console (/console) in Debian's headless Chromium against the
shared stack: one browser for the module, each test a tenant of its own,
explicit waits only. The page's headers and assets: tests/api/test_console.py."""

from __future__ import annotations

import pytest

from devstack.receiver import Receiver
from tests.browser.driver import BrowserMissing, Console, start_browser
from tests.integration.corpora import TOPICS, unique

pytestmark = pytest.mark.integration

BROKEN_PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage"
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def browser():
    try:
        driver = start_browser()
    except BrowserMissing as missing:
        pytest.skip(str(missing))
    yield driver
    driver.quit()


@pytest.fixture
def console(browser, service) -> Console:
    page = Console(browser, service.base_url)
    yield page
    # The next test starts from a blank tab: its key, its tenant.
    browser.execute_script("sessionStorage.clear()")
    assert page.dialogs() == []
    assert page.script_errors() == []


def tenant(service, prefix: str, scopes: str = "read,write,admin", tier: str = "enterprise"):
    """(key, client) of a new tenant."""
    key = service.create_key(unique(prefix), scopes=scopes, tier=tier)
    return key, service.client(key)


def drop_file(console: Console, filename: str, text: str) -> None:
    """A file dropped on the upload page's drop zone (a drop event as the
    browser sends one; WebDriver cannot drag from the desktop)."""
    console.driver.execute_script(
        """const transfer = new DataTransfer();
        transfer.items.add(new File([arguments[1]], arguments[0], {type: "text/plain"}));
        document.getElementById("drop-zone").dispatchEvent(
            new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));""",
        filename,
        text,
    )


def job_polls(console: Console) -> list[dict]:
    return [r for r in api_requests(console) if "/api/v1/jobs/" in r["url"] and r["method"] == "GET"]


def api_requests(console: Console) -> list[dict]:
    return [r for r in console.requests() if "/api/v1/" in r["url"]]


def test_the_key_lives_in_session_storage_only_and_every_call_carries_it_as_a_bearer_header(service, console):
    key, _client = tenant(service, "console-key")
    console.enter_key(key)
    console.shown("#collections-table")
    assert console.storage() == {"session": {"quarry.console.key": key}, "local": {}, "cookie": ""}
    assert key not in console.driver.current_url
    calls = api_requests(console)
    assert calls and all(r["authorization"] == f"Bearer {key}" and key not in r["url"] for r in calls)
    assert key[:15] in console.find("#key-label").text and key not in console.find("#key-label").text

    console.click("#forget-key")
    console.shown("#key-input")
    assert console.storage()["session"] == {}
    assert not console.is_shown("#nav") and not console.find_all("#collections-table")


def test_create_a_collection_upload_files_and_search_them(service, console, tmp_path):
    key, client = tenant(service, "console-upload")
    name = unique("notes")
    console.enter_key(key)
    console.type("#new-collection-name", name)
    console.type("#new-collection-description", "field notes")
    console.select("#new-collection-index", "hnsw")
    console.click("#create-collection-submit")
    row = console.text_of("#collections-table tbody tr", name)
    assert row.text.split()[:3] == [name, "field", "notes"] and "hnsw" in row.text

    files = {
        "lava.txt": b"Volcanoes erupt molten rock called lava.\n",
        "knots.md": b"# Knots\nA bowline makes a fixed loop at the end of a rope.\n",
        "broken.pdf": BROKEN_PDF,
    }
    for filename, content in files.items():
        (tmp_path / filename).write_bytes(content)
    console.go(f"upload/{name}")
    console.find("#file-input").send_keys("\n".join(str(tmp_path / filename) for filename in files))
    console.text_of(".upload .job-status", "succeeded")
    assert console.find(".upload .job-progress").get_attribute("value") == "100"
    assert "100 %" in console.find(".upload .job-percent").text
    assert console.find(".upload-counts").text.startswith("2 documents, 2 chunks, 0 duplicates skipped, 1 failed")
    [failed] = console.find_all(".upload .failed-files li")
    assert failed.text.startswith("broken.pdf: ") and "PDF" in failed.text

    # A folder: its files, recursively, leaving out hidden ones and those of a type the service does not read.
    folder = tmp_path / "folder"
    (folder / "deeper").mkdir(parents=True)
    (folder / "tides.txt").write_text("Ocean tides rise and fall with the moon.")
    (folder / "deeper" / "chess.md").write_text("The knight jumps in an L shape.")
    (folder / "deeper" / "photo.png").write_bytes(b"\x89PNG")
    (folder / ".hidden.txt").write_text("not sent")
    console.find("#folder-input").send_keys(str(folder))
    console.until(lambda: len(console.find_all("#upload-status .upload")) == 2, "a second upload")
    console.text_of(".upload:first-child .upload-counts", "2 documents, 2 chunks")
    assert [li.text for li in console.find_all(".upload:first-child .not-sent li")] == ["folder/deeper/photo.png"]

    # A file dropped on the page goes the same way.
    drop_file(console, "bees.txt", "Honey bees make honey from nectar.")
    console.until(lambda: len(console.find_all("#upload-status .upload")) == 3, "a third upload")
    console.text_of(".upload:first-child .upload-counts", "1 documents, 1 chunks")
    assert client.get(f"/api/v1/collections/{name}").json()["documents"] == 5

    console.go(f"search/{name}")
    console.type("#search-query", "how do I tie a loop in a rope?")
    console.check("#search-answer")
    console.click("#search-submit")
    first = console.shown("#hit-a-1")
    assert first.get_attribute("data-document-id") == "knots.md"
    assert "bowline" in first.find_element("css selector", "td.text").text
    assert "ms" in console.find("#side-a .took-ms").text
    job_id = console.find("#side-a .search-job-id").text
    assert client.get(f"/api/v1/jobs/{job_id}").json()["result"]["hits"][0]["document_id"] == "knots.md"
    cite = console.shown("#answer-a .cite[data-rank='1']")
    cite.click()
    console.until(lambda: "cited" in console.find("#hit-a-1").get_attribute("class"), "the cited hit marked")


def test_compare_two_pipelines_side_by_side(service, console):
    key, client = tenant(service, "console-compare")
    name = unique("topics")
    client.ingest(name, [{"id": topic, "text": text, "metadata": {"topic": topic}} for topic, text in TOPICS])
    console.enter_key(key, f"search/{name}")
    console.type("#search-query", "molten rock")
    console.select("#search-pipeline", "dense")
    console.type("#search-top-k", "5")
    console.check("#search-compare")
    console.select("#search-pipeline-b", "keyword")
    console.click("#search-submit")
    console.shown("#hits-a")
    console.shown("#side-b .search-job-id")
    jobs = [element.text for element in console.find_all(".search-job-id")]
    assert len(set(jobs)) == 2
    dense = [row.get_attribute("data-document-id") for row in console.find_all("#hits-a tr.hit")]
    keyword = [row.get_attribute("data-document-id") for row in console.find_all("#hits-b tr.hit")]
    assert dense[0] == keyword[0] == "volcano" and len(dense) == 5 and len(keyword) < 5
    marked = [row.get_attribute("data-document-id") for row in console.find_all("#hits-a tr.only-here")]
    assert marked == [doc for doc in dense if doc not in keyword] and marked
    assert all("not in keyword" in row.text for row in console.find_all("#hits-a tr.only-here"))
    assert console.find_all("#hits-b tr.only-here") == []  # keyword's few hits are all among dense's

    # Filters: key = value rows narrow the search.
    console.check("#search-compare", False)
    console.type(".filter-key", "topic")
    console.type(".filter-value", "mars")
    console.click("#search-submit")
    console.until(
        lambda: [row.get_attribute("data-document-id") for row in console.find_all("#hits-a tr.hit")] == ["mars"],
        "the filtered hits",
    )

    # Deleting the collection is a job the page follows; the list no longer has it.
    console.go("collections")
    console.text_of("#collections-table tbody tr", name).find_element("css selector", ".delete-collection").click()
    console.click(".confirm-yes")
    console.text_of("#collection-jobs .job-status", "succeeded")
    console.until(lambda: not console.find_all(f"tr[data-collection='{name}']"), "the collection gone from the list")
    assert client.get(f"/api/v1/collections/{name}").status_code == 404


def test_jobs_follow_their_status_cancel_a_queued_one_and_a_quota_refusal_says_when_to_retry(service, console):
    key, client = tenant(service, "console-jobs", tier="free")  # 10 jobs in flight at most
    name = unique("queued")
    service.pause_queue("ingest")
    resumed = False
    try:
        ids = [
            client.submit(
                f"/api/v1/collections/{name}/documents", {"documents": [{"id": f"d{i}", "text": f"Note {i}."}]}
            )["id"]
            for i in range(10)
        ]
        # Ten in flight, the free tier's quota: one more upload is refused with its Retry-After.
        console.enter_key(key, f"upload/{name}")
        drop_file(console, "more.txt", "one too many")
        console.text_of("#problem-title", "429")
        assert console.find("#problem-code").text == "quota_exceeded" and console.find("#problem-request-id").text
        assert console.find("#problem-retry").text.startswith("Retry after ")

        console.go("jobs")
        console.select("#jobs-status", "queued")
        console.click("#jobs-apply")
        console.until(lambda: len(console.find_all("tr.job[data-status='queued']")) == 10, "ten queued jobs")
        row = f"tr.job[data-job-id='{ids[0]}']"
        console.click(f"{row} .cancel-job")
        console.until(lambda: console.find(row).get_attribute("data-status") == "cancelled", "the cancelled job")
        assert client.get(f"/api/v1/jobs/{ids[0]}").json()["status"] == "cancelled"
        console.click(f"tr.job[data-job-id='{ids[1]}'] .show-json")
        assert f'"id": "{ids[1]}"' in console.shown("tr.job-json pre").text
        # While nothing changes, the rows' polls are conditional and answered 304.
        console.until(
            lambda: any(r["ifNoneMatch"] and r["status"] == 304 for r in job_polls(console)), "a conditional poll"
        )

        # Another tab in front: the console's tab is hidden and polls nothing
        # while its jobs run to the end.
        driver, console_tab = console.driver, console.driver.current_window_handle
        driver.switch_to.new_window("tab")
        try:
            service.resume_queue("ingest")
            resumed = True
            finished = [client.wait_job(job_id)["status"] for job_id in ids[1:]]
            assert finished == ["succeeded"] * 9
        finally:
            driver.close()
            driver.switch_to.window(console_tab)
    finally:
        if not resumed:
            service.resume_queue("ingest")
    assert not [r for r in job_polls(console) if r["visibility"] == "hidden"]
    # Shown again, the rows poll at once and follow their jobs, without a reload.
    console.until(lambda: len(console.find_all("tr.job[data-status='succeeded']")) == 9, "nine succeeded jobs")


def test_a_webhook_delivery_shows_and_is_redelivered(service, console):
    key, _client = tenant(service, "console-hooks")
    receiver = Receiver().start()
    try:
        console.enter_key(key, "webhooks")
        console.type("#webhook-url", receiver.url())
        for event in ("job.succeeded", "job.failed"):
            console.check(f"#webhook-events input[value='{event}']", False)
        console.check("#webhook-events input[value='ping']")
        console.click("#create-webhook-submit")
        assert console.shown("#webhook-secret code").text.startswith("whsec_")
        console.text_of("tr.webhook", receiver.url())

        console.click("tr.webhook .test-webhook")
        delivery = console.text_of("#deliveries-table tr.delivery[data-state='succeeded']", "ping")
        assert delivery.find_element("css selector", ".status-code").text == "200"
        assert delivery.find_element("css selector", ".attempts").text == "1"
        delivery.find_element("css selector", ".redeliver").click()
        console.until(
            lambda: (
                console.find("tr.delivery .attempts").text == "2"
                and console.find("tr.delivery").get_attribute("data-state") == "succeeded"
            ),
            "the second attempt",
        )
        assert len({r.headers["webhook-id"] for r in receiver.wait_for(2)}) == 1

        console.click("tr.webhook .edit-webhook")
        console.check("tr.webhook .edit-events input[value='job.failed']")
        console.click("tr.webhook .save-events")
        console.until(
            lambda: set(console.find("tr.webhook td.events").text.split("\n")[0].split(", ")) == {"ping", "job.failed"},
            "the new events",
        )
        console.click("tr.webhook .toggle-webhook")
        console.text_of("tr.webhook td.active", "disabled")
        console.click("tr.webhook .rotate-webhook")
        assert console.shown("#rotated-secret code").text.startswith("whsec_")
    finally:
        receiver.stop()


def test_a_hostile_document_renders_as_text_and_runs_nothing(service, console):
    key, client = tenant(service, "console-xss")
    name = unique("hostile")
    doc_id = '<b id="injected">bold</b>'
    client.ingest(name, [{"id": doc_id, "text": HOSTILE, "metadata": {"note": "<script>alert(2)</script>"}}])
    console.enter_key(key, f"search/{name}")
    console.type("#search-query", "img onerror alert")
    console.select("#search-pipeline", "keyword")
    console.click("#search-submit")
    hit = console.shown("#hit-a-1")
    assert hit.find_element("css selector", "td.text").text == HOSTILE
    assert hit.find_element("css selector", "td.document a").text == doc_id
    assert "<script>alert(2)</script>" in hit.find_element("css selector", "td.metadata").text

    console.go(f"documents/{name}")
    console.text_of("#documents-table tr.document", doc_id).find_element("css selector", ".open-document").click()
    assert console.shown("#doc-id").text == doc_id
    assert (
        console.find("#doc-hash").text
        == client.get(f"/api/v1/collections/{name}/documents").json()["items"][0]["content_hash"]
    )
    assert console.find_all("main img, main script, #injected") == []
    assert console.dialogs() == []

    # The document's deletion is a job the page follows.
    console.click("#delete-document")
    console.click(".confirm-yes")
    console.text_of("#delete-document-job .job-status", "succeeded")
    console.text_of("#documents-table", "No documents.")


def test_a_read_only_key_is_offered_no_write_and_a_forced_call_shows_the_403(service, console):
    owner = unique("console-reader")
    client = service.client(service.create_key(owner))
    name = unique("shelf")
    assert client.post("/api/v1/collections", json={"name": name}).status_code == 201
    reader = service.create_key(owner, scopes="read")
    console.enter_key(reader)
    console.text_of("#collections-table tbody tr", name)
    assert not console.is_shown("#create-collection") and not console.is_shown(".delete-collection")
    assert not console.is_shown("#nav-keys")

    console.driver.execute_script("document.getElementById('create-collection').hidden = false")
    console.type("#new-collection-name", unique("forced"))
    console.click("#create-collection-submit")
    console.text_of("#problem-title", "403")
    assert "lacks the `write` scope" in console.find("#problem-detail").text
    assert console.find("#problem-request-id").text


def test_an_admin_key_creates_and_revokes_keys(service, console):
    key, client = tenant(service, "console-admin")
    console.enter_key(key)
    console.click("#nav-keys")
    console.type("#new-key-name", "reader")
    console.click("#create-key-submit")
    secret = console.shown("#new-key-secret").text
    assert secret.startswith("qk_")
    assert service.client(secret).get("/api/v1/collections").status_code == 200
    row = console.text_of("tr.key", "reader")
    assert secret not in console.find("#keys-table").text and row.get_attribute("data-prefix") in secret
    row.find_element("css selector", ".revoke-key").click()
    console.click(".confirm-yes")
    console.text_of("tr.key td.revoked", "revoked")
    assert service.client(secret).get("/api/v1/collections").status_code == 401
