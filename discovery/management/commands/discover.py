"""``manage.py discover``: find devices with Who-Is, enumerate and store them (no Celery)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count, Q

from discovery.bacnet_types import BACnetError
from discovery.jobs import JobError, validate_parameters
from discovery.management.commands._bacnet_options import add_bacnet_options, apply_bacnet_options
from discovery.models import BACnetDevice, Site


class Command(BaseCommand):
    help = "Discover BACnet devices (global, ranged or directed Who-Is) and store them."

    def add_arguments(self, parser: Any) -> None:
        add_bacnet_options(parser)
        parser.add_argument("--low", type=int, help="Lowest device instance to ask for.")
        parser.add_argument("--high", type=int, help="Highest device instance to ask for.")
        parser.add_argument(
            "--target",
            action="append",
            default=[],
            help="Send a directed Who-Is to this address (repeatable): 192.168.2.40, "
            "192.168.2.40:47809, or NET:ADDR behind a router (20:192.168.2.5, 20:0x0a).",
        )
        parser.add_argument("--timeout", type=float, help="Longest wait for I-Am answers, seconds.")

    def handle(self, *args: Any, **options: Any) -> None:
        from discovery.bacnet_client import get_client, shutdown_client
        from discovery.services.discovery import discover_and_store

        if options["timeout"]:
            settings.BACNET_DISCOVERY_MAX_S = options["timeout"]
        try:
            params = validate_parameters(
                "discover",
                {"low": options["low"], "high": options["high"], "targets": options["target"]},
            )
        except JobError as exc:
            raise CommandError(
                f"{exc} Addresses are written 192.168.1.20, 192.168.1.20:47809, or NET:ADDR "
                "for a device behind a BACnet router (20:192.168.2.5, 20:0x0a)."
            ) from exc
        site = apply_bacnet_options(options)  # after the checks that need no database
        try:
            client = get_client()
            self.stderr.write(f"BACnet client on {client.local_address}")
            summary = discover_and_store(
                client,
                low=params.get("low"),
                high=params.get("high"),
                targets=params.get("targets", []),
                progress=lambda message: self.stderr.write(message),
                site_id=site.pk,
            )
        except BACnetError as exc:
            raise CommandError(f"Discovery failed: {exc}") from exc
        finally:
            shutdown_client()
        self._print(summary, site)
        if not summary["devices_found"]:
            raise CommandError(
                "No device answered. Check the interface (--interface / BACNET_INTERFACE), "
                "the firewall (UDP 47808 inbound), or use --bbmd / --target for other subnets."
            )

    def _print(self, summary: dict[str, Any], site: Site) -> None:
        """The devices that answered this run (points still listed by the device), then
        the known ones that did not."""
        failed = summary["devices_failed"]
        rows = (
            BACnetDevice.objects.filter(site=site, device_instance__in=summary["answered"])
            .annotate(listed=Count("points", filter=Q(points__missing_since__isnull=True)))
            .order_by("device_instance")
        )
        self.stdout.write(f"{'instance':>8}  {'address':<22} {'points':>6}  name")
        for device in rows:
            mark = ""
            if str(device.device_instance) in failed or device.device_instance in failed:
                reason = failed.get(str(device.device_instance)) or failed[device.device_instance]
                mark = f"  (failed: {reason})"
            if device.conflict_addresses:
                mark += f"  (conflict: also at {', '.join(device.conflict_addresses)})"
            self.stdout.write(
                f"{device.device_instance:>8}  {device.address:<22} "
                f"{device.listed:>6}  {device.name!r}{mark}"
            )
        silent = summary.get("not_answered", [])
        if silent:
            self.stdout.write(
                f"Known devices that did not answer: {', '.join(map(str, silent[:50]))}"
                + (f" and {len(silent) - 50} more" if len(silent) > 50 else "")
            )
        self.stdout.write(
            f"{summary['devices_found']} devices answered ({summary['devices_new']} new), "
            f"{summary['points']} points ({summary['points_new']} new), "
            f"{len(failed)} failed, {len(summary['duplicates'])} duplicate instances, "
            f"in {summary['duration_s']:.2f} s"
        )
        for instance, addresses in summary["duplicates"].items():
            self.stdout.write(f"Duplicate device instance {instance} at {', '.join(addresses)}")
