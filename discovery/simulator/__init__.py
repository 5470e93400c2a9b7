"""A simulated BACnet/IP site for tests and the demo (built on bacpypes3).

This is a test and demo device, not the product: the product's only BACnet code is
discovery/bacnet_client/. `SiteSpec` holds the options, `run_site()` runs the site
until SIGTERM/SIGINT; see docs/simulator.md.
"""

from .spec import SiteSpec

__all__ = ["SiteSpec", "run_site"]


def run_site(spec: SiteSpec, ready_file: str | None = None) -> None:
    """Run the site until SIGTERM/SIGINT (imports bacpypes3 only when called)."""
    from .site import run_site as _run_site

    _run_site(spec, ready_file)
