"""Flower's settings file (Flower reads ./flowerconfig.py at start).

Flower shows every task and can revoke them: reachable from beyond this
machine, it must ask for a password. FLOWER_BASIC_AUTH (`user:password`,
read by Flower itself) is required when it listens on anything but loopback.
"""

import ipaddress
import logging as _logging
import os
import sys

# Flower (tornado) logs at the level every other process does.
logging = os.environ.get("LOG_LEVEL", "info").lower()
# Flower asks the workers for their state as it starts, usually before the
# first worker is up, and warns about each question nobody answered.
_logging.getLogger("flower.inspector").setLevel(_logging.ERROR)


def _listen_address() -> str:
    for arg in sys.argv:
        if arg.startswith("--address="):
            return arg.split("=", 1)[1]
    return os.environ.get("FLOWER_ADDRESS") or os.environ.get("FLOWER_HOST") or "127.0.0.1"


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


_address = _listen_address()
if not _is_loopback(_address) and not os.environ.get("FLOWER_BASIC_AUTH"):
    sys.exit(
        f"Flower would listen on {_address} without a password: set FLOWER_BASIC_AUTH=user:password "
        "(or FLOWER_HOST=127.0.0.1)."
    )
