"""The BACnet/IP client: the only package of the product that imports BAC0 or bacpypes3.

One long-lived BAC0 application per process lives on an event loop in a thread of its own;
callers (Celery tasks, management commands, tests) use a synchronous facade that submits
coroutines to that loop with ``run_coroutine_threadsafe``. Why this shape:

- One BACnet/IP socket per host interface: bacpypes3 binds with SO_REUSEPORT, and two
  processes on the same ip:port split the replies between them. ``get_client()`` keeps one
  started client per process; the BACnet worker runs the solo (or threads) pool.
- BAC0 is async-only: its constructor needs a running loop, so it is built on the loop
  thread, always with ``ip="A.B.C.D/len"``.
- bacpypes3 raises ErrorPDU, RejectPDU and AbortPDU, which derive from BaseException and
  kill a Celery worker. Every network await goes through ``Session.call()``, which adds a
  deadline (a garbage or truncated answer otherwise leaves a request waiting forever) and
  converts everything into the picklable ``BACnetError`` / ``BACnetTimeout``.
- A global Who-Is in bacpypes3 always waits its whole timeout; ``discover()`` sends the
  Who-Is itself, hooks I-Am reception and returns once the network has been quiet.

Importing this package is cheap and has no side effects: BAC0 and bacpypes3 are imported on
``start()`` (BAC0 reads ``.env`` and adds log handlers at import, see ``stack.load_stack``).

The modules, from the edge inwards:

- ``config``: ClientConfig, interface and BBMD address parsing, host interface detection,
  bind checks (standard library only; ``discovery.checks`` uses them).
- ``stack``: loading BAC0 and bacpypes3 on first start, undoing their import side effects.
- ``convert``: bacpypes3 values and error answers to plain Python values and texts.
- ``session``: requests to one device with a deadline each, errors converted, requests
  in flight learned, a device that stops answering noticed (``Session``).
- ``batching``: which objects are points, how many items one request may ask for.
- ``device``: enumeration and reads of one device, in batches it accepts (``DeviceWork``).
- ``deadline``: the device deadline, grown with the work.
- ``runtime``: the BAC0 application on its loop thread (start, stop, run coroutines, and
  small hooks for code below the facade: ``application``, ``i_am_listener``,
  ``run_coroutine``).
- ``whois``: Who-Is and the I-Ams that answer it.
- ``client``: ``BACnetClient``, the facade (discover, enumerate, read).

The modules are internal to the package: names they share with each other are public
(no underscore); an underscore means "used in its own module only". This file re-exports
the names the rest of the product uses and keeps the process-wide client.
"""

from __future__ import annotations

import atexit
import os
import threading

from discovery.bacnet_client.batching import POINT_OBJECT_TYPES, batch_size
from discovery.bacnet_client.client import MAX_INSTANCE, BACnetClient
from discovery.bacnet_client.config import (
    DEFAULT_PORT,
    ClientConfig,
    InterfaceSpec,
    detect_interface,
    host_ipv4_interfaces,
    host_prefix_for,
    is_host_address,
    parse_bbmd_address,
    parse_interface,
    resolve_interface,
)
from discovery.bacnet_client.convert import (
    convert_present_value,
    safe_text,
    shortest_float32,
    status_flags_mask,
)
from discovery.bacnet_client.device import with_state_texts
from discovery.bacnet_client.stack import load_stack

__all__ = [
    "DEFAULT_PORT",
    "MAX_INSTANCE",
    "POINT_OBJECT_TYPES",
    "BACnetClient",
    "ClientConfig",
    "InterfaceSpec",
    "batch_size",
    "convert_present_value",
    "current_client",
    "detect_interface",
    "get_client",
    "host_ipv4_interfaces",
    "host_prefix_for",
    "is_host_address",
    "load_stack",
    "parse_bbmd_address",
    "parse_interface",
    "resolve_interface",
    "safe_text",
    "shortest_float32",
    "shutdown_client",
    "status_flags_mask",
    "with_state_texts",
]

# --------------------------------------------------------------------------------------
# The process-wide client
# --------------------------------------------------------------------------------------

_client_lock = threading.Lock()
_client: BACnetClient | None = None


def get_client() -> BACnetClient:
    """The process's client, built from settings and started on first use (thread-safe).

    One socket per process: everything that talks BACnet in a process goes through this.
    After a fork the child builds its own (the parent's loop thread does not exist there)."""
    global _client
    with _client_lock:
        if _client is not None and _client.pid != os.getpid():
            _client = None
        if _client is None:
            _client = BACnetClient(ClientConfig.from_settings())
        if not _client.started:
            _client.start()
        return _client


def current_client() -> BACnetClient | None:
    """The process's client if it is started, without starting one (threads that only
    serve a started client, such as the COV keeper)."""
    client = _client
    if client is None or client.pid != os.getpid() or not client.started:
        return None
    return client


def shutdown_client() -> None:
    """Stop the process's client, if any (idempotent)."""
    global _client
    with _client_lock:
        client, _client = _client, None
    if client is not None and client.pid == os.getpid():
        client.stop()


atexit.register(shutdown_client)
