"""The web console: one static page at /console and its ES modules, served
by the web process with no key (everything it shows comes from /api/v1,
called by the page with the key the person types in).

It lives outside /api/, so the API's key check (app/auth.py) and the rate
limiter (app/api/web_extensions.py) let it through as they let /docs through.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, redirect, send_from_directory
from werkzeug.wrappers import Response as BaseResponse

STATIC = Path(__file__).parent / "static"

# Everything the page loads comes from this origin; no inline script or style
# (the page has none), nothing may frame it (clickjacking a page that holds an
# admin key), and Trusted Types make any string assigned to innerHTML and the
# like throw: API text can only ever reach the page as text.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        # The page's forms are handled by script; were one ever submitted by
        # the browser it could put what was typed (a key) into a URL.
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Revalidated on every load (answered 304 while unchanged), so a new
    # release's modules are never mixed with an old cached one.
    "Cache-Control": "no-cache",
}

blp = Blueprint("console", __name__, url_prefix="/console", static_folder=STATIC, static_url_path="/assets")


@blp.route("")
def page() -> Response:
    return send_from_directory(STATIC, "index.html")


@blp.route("/")
def page_with_slash() -> BaseResponse:
    # As /docs/ does: one address for the page.
    return redirect("/console")


@blp.after_request
def security_headers(response: Response) -> Response:
    # Every answer of the blueprint: the page, its assets, and their 404s.
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response
