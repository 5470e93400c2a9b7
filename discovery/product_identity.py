"""The product's own BACnet device instances, so that it never lists itself.

Every process of the product that opens a BACnet socket is a BACnet device on the
network and answers Who-Is. Two devices with one instance violate the protocol, and a
discovery that stores the product's own worker shows the operator a device that is not
in the building. So:

- the BACnet worker is ``BACNET_DEVICE_INSTANCE`` (default 3056999);
- the command-line tools (``discover``, ``collect``) are ``BACNET_TOOL_DEVICE_INSTANCE``
  when set, otherwise one chosen in the block the product keeps for itself
  (``BACNET_DEVICE_INSTANCE`` + 1 … + 63), by process id, so two runs side by side
  rarely collide, and never with the worker;
- discovery skips every instance of that block, and any device whose object name is the
  one the product gives itself (``bacnet-monitor-<instance>``): a second installation
  with other settings is not stored either.
"""

from __future__ import annotations

import os

from django.conf import settings

# The product keeps this many instances from BACNET_DEVICE_INSTANCE on for itself.
PRODUCT_BLOCK = 64
# The object name the BACnet client gives its own device object (bacnet_client.runtime).
PRODUCT_NAME_PREFIX = "bacnet-monitor-"


def product_instances() -> set[int]:
    """Every device instance that belongs to the product."""
    base = int(settings.BACNET_DEVICE_INSTANCE)
    instances = set(range(base, base + PRODUCT_BLOCK))
    configured = getattr(settings, "BACNET_TOOL_DEVICE_INSTANCE", None)
    if configured is not None:
        instances.add(int(configured))
    return instances


def tool_device_instance(pid: int | None = None) -> int:
    """The instance of a command-line tool's BACnet client (never the worker's)."""
    configured = getattr(settings, "BACNET_TOOL_DEVICE_INSTANCE", None)
    if configured is not None:
        return int(configured)
    pid = os.getpid() if pid is None else pid
    return int(settings.BACNET_DEVICE_INSTANCE) + 1 + pid % (PRODUCT_BLOCK - 1)


def is_product_device(instance: int, name: str = "") -> bool:
    """True for a device that is the product itself (one of its processes)."""
    return instance in product_instances() or (name or "").startswith(PRODUCT_NAME_PREFIX)
