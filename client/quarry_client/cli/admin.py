"""Commands that set the service up: webhooks (and `listen`), keys, health."""

from __future__ import annotations

import itertools

import click

from quarry_client.cli import output
from quarry_client.cli.base import command, main
from quarry_client.cli.listen import listen as serve_listener
from quarry_client.clients import Quarry
from quarry_client.models import ApiKey, Webhook

EVENTS = click.option(
    "--events",
    "--event",
    "events",
    multiple=True,
    default=("*",),
    show_default=True,
    help="job.succeeded, job.failed, job.cancelled, job.progress or *; repeat for several.",
)


def _show_webhook(webhook: Webhook) -> None:
    output.fields(webhook, ["id", "url", "events", "description", "active", "disabled_reason", "secret", "created_at"])


@main.group()
def webhooks() -> None:
    """Manage webhook endpoints and their deliveries."""


@command(webhooks, "create")
@click.argument("url")
@EVENTS
@click.option("--description")
def webhooks_create(client: Quarry, url: str, events: tuple[str, ...], description: str | None, as_json: bool):
    """Register URL; its signing secret is shown only now."""
    made = client.webhooks.create(url, events, description=description)
    output.emit_json(made) if as_json else _show_webhook(made)


@command(webhooks, "list")
def webhooks_list(client: Quarry, as_json: bool) -> None:
    found = list(client.webhooks.list())
    if as_json:
        return output.emit_json(found)
    output.table([(w.id, w.url, ",".join(w.events), w.active) for w in found], ["id", "url", "events", "active"])


@command(webhooks, "show")
@click.argument("webhook_id")
def webhooks_show(client: Quarry, webhook_id: str, as_json: bool) -> None:
    found = client.webhooks.get(webhook_id)
    output.emit_json(found) if as_json else _show_webhook(found)


@command(webhooks, "update")
@click.argument("webhook_id")
@click.option("--url")
@click.option("--events", "--event", "events", multiple=True)
@click.option("--active/--inactive", default=None)
def webhooks_update(
    client: Quarry, webhook_id: str, url: str | None, events: tuple[str, ...], active: bool | None, as_json: bool
):
    changed = client.webhooks.update(webhook_id, url=url, events=events or None, active=active)
    output.emit_json(changed) if as_json else _show_webhook(changed)


@command(webhooks, "delete")
@click.argument("webhook_id")
def webhooks_delete(client: Quarry, webhook_id: str, as_json: bool) -> None:
    client.webhooks.delete(webhook_id)
    output.emit_json({"deleted": webhook_id}) if as_json else output.say(f"Deleted {webhook_id}.")


@command(webhooks, "rotate-secret")
@click.argument("webhook_id")
def webhooks_rotate(client: Quarry, webhook_id: str, as_json: bool) -> None:
    """A new secret; the old one signs beside it for a grace period."""
    changed = client.webhooks.rotate_secret(webhook_id)
    output.emit_json(changed) if as_json else _show_webhook(changed)


@command(webhooks, "test")
@click.argument("webhook_id")
def webhooks_test(client: Quarry, webhook_id: str, as_json: bool) -> None:
    """Send a ping event to the endpoint."""
    answer = client.webhooks.test(webhook_id)
    output.emit_json(answer) if as_json else output.say("Ping sent.")


@command(webhooks, "deliveries")
@click.argument("webhook_id")
@click.option("--limit", default=50, show_default=True)
def webhooks_deliveries(client: Quarry, webhook_id: str, limit: int, as_json: bool) -> None:
    found = list(itertools.islice(client.webhooks.deliveries(webhook_id), limit))
    if as_json:
        return output.emit_json(found)
    rows = [
        (d.id, d.event, d.state, d.attempts, d.last_status_code, d.last_error, output.when(d.next_attempt_at))
        for d in found
    ]
    output.table(rows, ["id", "event", "state", "attempts", "last status", "last error", "next attempt"])


@command(webhooks, "redeliver")
@click.argument("webhook_id")
@click.argument("delivery_id")
def webhooks_redeliver(client: Quarry, webhook_id: str, delivery_id: str, as_json: bool) -> None:
    answer = client.webhooks.redeliver(webhook_id, delivery_id)
    output.emit_json(answer) if as_json else output.say("Redelivery queued.")


@command(main, "listen")
@click.option("--forward-to", metavar="URL", help="Pass each verified delivery on to your receiver.")
@click.option("--print", "print_only", is_flag=True, help="Only print each verified delivery.")
@EVENTS
@click.option("--host", default="127.0.0.1", show_default=True, help="Where to listen.")
@click.option("--port", default=0, help="Port to listen on (default: any free one).")
@click.option("--public-url", help="The URL the service should POST to, when not http://HOST:PORT/ (a tunnel).")
def listen(
    client: Quarry,
    forward_to: str | None,
    print_only: bool,
    events: tuple[str, ...],
    host: str,
    port: int,
    public_url: str | None,
    as_json: bool,
) -> None:
    """Receive this tenant's webhooks here until Ctrl-C, as a temporary endpoint.

    Each delivery's signature is verified; the event is printed, or
    forwarded with its headers to --forward-to (the receiver's status code is
    shown and answered back, so its failures are retried). The endpoint is
    deleted on exit."""
    if bool(forward_to) == print_only:
        raise click.UsageError("give either --forward-to URL or --print")
    serve_listener(
        client, host=host, port=port, public_url=public_url, events=list(events), forward_to=forward_to, as_json=as_json
    )


# --- keys and health ------------------------------------------------------------


@main.group()
def keys() -> None:
    """Create, list, rotate and revoke API keys (an admin key's work)."""


def _show_key(key: ApiKey) -> None:
    output.fields(key, ["id", "name", "prefix", "scopes", "tier", "expires_at", "key"])


@command(keys, "create")
@click.argument("name")
@click.option("--scope", "--scopes", "scopes", multiple=True, default=("read", "write"), show_default=True)
@click.option("--tier", type=click.Choice(["free", "pro", "enterprise"]))
@click.option("--expires-at", help="ISO 8601 time it stops working.")
def keys_create(
    client: Quarry, name: str, scopes: tuple[str, ...], tier: str | None, expires_at: str | None, as_json: bool
):
    """A new key; the secret is shown only now."""
    made = client.keys.create(name, _split(scopes), tier=tier, expires_at=expires_at)
    output.emit_json(made) if as_json else _show_key(made)


def _split(values: tuple[str, ...]) -> list[str]:
    """`--scope read,write` and `--scope read --scope write` alike."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@command(keys, "list")
def keys_list(client: Quarry, as_json: bool) -> None:
    found = list(client.keys.list())
    if as_json:
        return output.emit_json(found)
    rows = [(k.id, k.name, k.prefix, ",".join(k.scopes), k.tier, output.when(k.last_used_at), k.revoked) for k in found]
    output.table(rows, ["id", "name", "prefix", "scopes", "tier", "last used", "revoked"])


@command(keys, "revoke")
@click.argument("key_id")
def keys_revoke(client: Quarry, key_id: str, as_json: bool) -> None:
    client.keys.revoke(key_id)
    output.emit_json({"revoked": key_id}) if as_json else output.say(f"Revoked {key_id}.")


@command(keys, "rotate")
@click.argument("key_id")
def keys_rotate(client: Quarry, key_id: str, as_json: bool) -> None:
    """A new key; the old one keeps working for a grace period."""
    made = client.keys.rotate(key_id)
    output.emit_json(made) if as_json else _show_key(made)


@command(main, "health")
def health(client: Quarry, as_json: bool) -> None:
    """The service's health and its components'."""
    found = client.service.health()
    if as_json:
        return output.emit_json(found)
    output.say(f"{found.status} (version {found.version}, up {found.uptime_s} s)")
    output.table([(name, str(state)) for name, state in found.components.items()], ["component", "state"])
