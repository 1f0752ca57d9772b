"""The web console's page and assets: served without a key, never rate
limited, with a strict Content-Security-Policy, and written so that no text
from the API can become markup. (The console in a browser:
tests/integration/test_console.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.console import STATIC

ASSETS = sorted(path.name for path in STATIC.iterdir() if path.is_file())
SCRIPTS = [name for name in ASSETS if name.endswith(".js")]


@pytest.fixture(scope="module")
def browser(app):
    """A client with no key at all, as a browser opening /console is."""
    return app.test_client()


def csp_directives(response) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in policy.split(";") if part.strip())}


def test_the_page_is_public_and_carries_a_strict_policy(browser):
    page = browser.get("/console")
    assert page.status_code == 200 and page.mimetype == "text/html"
    csp = csp_directives(page)
    assert csp["default-src"] == ["'self'"] and csp["script-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["object-src"] == ["'none'"]
    assert csp["require-trusted-types-for"] == ["'script'"]
    assert csp["form-action"] == ["'none'"]  # a form the script missed cannot put the key into a URL
    for values in csp.values():
        # Nothing inline, nothing evaluated, no origin but this one.
        assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"} & set(values), csp
        assert not any("://" in value for value in values), csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["X-Request-ID"]
    assert "X-RateLimit-Limit" not in page.headers  # outside /api/v1: not counted


def test_every_asset_is_served_without_a_key_with_the_same_headers(browser):
    assert {"index.html", "console.css", "main.js", "api.js"} <= set(ASSETS)
    for name in ASSETS:
        response = browser.get(f"/console/assets/{name}")
        assert response.status_code == 200, name
        assert response.headers["X-Content-Type-Options"] == "nosniff", name
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], name
        if name.endswith(".js"):
            # Module scripts run only with a JavaScript type (nosniff holds the browser to it).
            assert response.mimetype in ("text/javascript", "application/javascript"), name
        if name.endswith(".css"):
            assert response.mimetype == "text/css"


def test_what_the_page_loads_comes_from_this_server(browser):
    html = browser.get("/console").text
    sources = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert sources
    for source in sources:
        assert source.startswith("/console/assets/"), source
        assert browser.get(source).status_code == 200, source
    # Module imports: each relative, each served.
    for name in SCRIPTS:
        for imported in re.findall(r'^import .* from "([^"]+)";', (STATIC / name).read_text(), re.MULTILINE):
            assert imported.startswith("./") and (STATIC / imported).is_file(), (name, imported)


def test_the_page_has_no_inline_script_style_or_handler():
    html = (STATIC / "index.html").read_text()
    assert all('src="' in tag for tag in re.findall(r"<script[^>]*>", html))
    assert re.search(r"<script[^>]*>\s*[^<\s]", html) is None  # no body between the tags
    assert "<style" not in html and " style=" not in html
    assert re.search(r"\son[a-z]+=", html) is None


@pytest.mark.parametrize("name", SCRIPTS)
def test_no_script_turns_text_into_markup_or_puts_the_key_anywhere_but_a_header(name):
    source = (STATIC / name).read_text()
    code = re.sub(r"^\s*//.*$", "", source, flags=re.MULTILINE)  # comments may name what is avoided
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "srcdoc"):
        assert sink not in code, f"{name} uses {sink}"
    assert "localStorage" not in code and "document.cookie" not in code, name
    assert "http://" not in code and "https://" not in code.replace('"https://example.com/quarry-hook"', ""), name


def test_the_key_is_kept_in_session_storage_and_sent_only_as_a_bearer_header():
    api = (STATIC / "api.js").read_text()
    assert "sessionStorage.getItem(KEY_ITEM)" in api and "Authorization: `Bearer ${secret}`" in api
    uses = [name for name in SCRIPTS if "key.get()" in (STATIC / name).read_text()]
    assert set(uses) <= {"api.js", "main.js"}, uses


def test_the_console_is_outside_the_rate_limits(app_with):
    limited = app_with(
        rate_limits={"free": "2/minute", "pro": "2/minute", "enterprise": "2/minute", "anonymous": "2/minute"}
    )
    client = limited.app.test_client()
    for _ in range(5):
        assert client.get("/console").status_code == 200
        assert client.get("/console/assets/main.js").status_code == 200
    statuses = [client.get("/api/v1/collections").status_code for _ in range(3)]
    assert statuses[-1] == 429  # while the API itself is limited


def test_the_slash_redirects_and_unknown_assets_are_problems_with_the_headers(browser):
    slash = browser.get("/console/")
    assert slash.status_code in (301, 302, 308) and slash.headers["Location"].endswith("/console")
    missing = browser.get("/console/assets/nope.js")
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    assert missing.headers["X-Content-Type-Options"] == "nosniff"
    escape = browser.get("/console/assets/../../__init__.py")
    assert escape.status_code == 404


def test_the_page_names_no_asset_it_does_not_ship():
    html = (STATIC / "index.html").read_text()
    for source in re.findall(r'(?:src|href)="/console/assets/([^"]+)"', html):
        assert Path(STATIC / source).is_file(), source
