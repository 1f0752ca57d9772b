"""What every `quarry` command shares: the group, the client, --json, and
how an error is printed and which exit status it gives.

It reads QUARRY_URL and QUARRY_API_KEY, else what `make run` wrote for this
checkout (var/local-url, var/local-admin-key), so after `make run` it works
with no setup. Every command takes --json for scripts; EXIT_STATUSES says
what each exit status means."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click
import httpx

from quarry_client.cli import output
from quarry_client.clients import Quarry
from quarry_client.errors import JobCancelled, JobFailed, QuarryError, TransportError, WaitTimeout

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_NO_ANSWER = 4


class Context:
    def __init__(self, url: str | None, api_key: str | None) -> None:
        self._url, self._api_key = url, api_key
        self._client: Quarry | None = None

    @property
    def client(self) -> Quarry:
        if self._client is None:
            self._client = Quarry(self._url, self._api_key)
        return self._client


def _explain(error: QuarryError) -> tuple[str, int]:
    """The line to print for an error, and the exit status."""
    if isinstance(error, WaitTimeout):
        return str(error), EXIT_TIMEOUT
    if isinstance(error, TransportError):
        return f"{error.detail}. Is the service running (make run), and is QUARRY_URL right?", EXIT_NO_ANSWER
    if isinstance(error, JobFailed | JobCancelled):
        return f"{error} ({error.code})", EXIT_FAILED
    return f"{error} ({error.status} {error.code})", EXIT_FAILED


def command(group: click.Group, name: str | None = None) -> Callable[[Callable[..., Any]], click.Command]:
    """A subcommand of `group` with --json, given the client and json flag,
    that prints a refusal's detail and request id instead of a traceback."""

    def decorate(function: Callable[..., Any]) -> click.Command:
        # wraps() first: it copies the function's click parameters, which
        # --json then joins.
        @click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
        @click.pass_obj
        @functools.wraps(function)
        def run(context: Context, *args: Any, **kwargs: Any) -> Any:
            try:
                return function(context.client, *args, **kwargs)
            except QuarryError as error:
                line, status = _explain(error)
                output.fail(line, status)
            except httpx.InvalidURL as error:
                output.fail(f"not a URL the client can use: {error}", EXIT_USAGE)
            except OSError as error:  # a port to listen on, a file to read
                output.fail(str(error), EXIT_FAILED)
            except ValueError as error:  # an answer that is not the JSON it should be
                output.fail(f"unexpected answer from the service: {error}", EXIT_FAILED)

        return group.command(name)(run)

    return decorate


EXIT_STATUSES = """\b
Exit status: 0 done; 1 the service refused the request, a job failed or was
cancelled, or some files could not be ingested; 2 a usage error; 3 a wait
reached its --timeout; 4 the service did not answer."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_STATUSES)
@click.option("--url", envvar="QUARRY_URL", help="The service (default: QUARRY_URL, else what make run wrote).")
@click.option("--api-key", envvar="QUARRY_API_KEY", help="The API key (default: QUARRY_API_KEY, else make run's).")
@click.version_option(package_name="quarry-client")
@click.pass_context
def main(ctx: click.Context, url: str | None, api_key: str | None) -> None:
    """Quarry from the shell: collections, uploads, searches, jobs, webhooks, keys."""
    if ctx.obj is None:  # a caller may pass its own (a test's client)
        ctx.obj = Context(url, api_key)
