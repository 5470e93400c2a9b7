"""``manage.py collect``: one read cycle of every enabled point, stored (no Celery)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from discovery.bacnet_types import BACnetError
from discovery.management.commands._bacnet_options import add_bacnet_options, apply_bacnet_options


class Command(BaseCommand):
    help = "Read the present value of every enabled point once and store the readings."

    def add_arguments(self, parser: Any) -> None:
        add_bacnet_options(parser)
        parser.add_argument(
            "--device", type=int, action="append", default=[], help="Only this device instance."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from discovery.bacnet_client import get_client, shutdown_client
        from discovery.services.collection import collect_and_store

        site = apply_bacnet_options(options)
        try:
            summary = collect_and_store(
                get_client(),
                cycle_at=timezone.now().replace(microsecond=0),
                device_instances=options["device"] or None,
                progress=lambda message: self.stderr.write(message),
                site_id=site.pk,
            )
        except BACnetError as exc:
            raise CommandError(f"Collection failed: {exc}") from exc
        finally:
            shutdown_client()
        self.stdout.write(
            f"{summary['readings']} readings stored from {summary['devices_ok']} of "
            f"{summary['devices']} devices ({summary['point_errors']} point errors) "
            f"in {summary['duration_s']:.2f} s"
        )
        for instance, error in summary["device_errors"].items():
            self.stdout.write(f"Device {instance}: {error}")
        for instance, address in summary["devices_moved"].items():
            self.stdout.write(f"Device {instance} moved: found and read at {address}")
        for instance, addresses in summary["conflicts"].items():
            self.stdout.write(
                f"Device {instance}: duplicate instance: read at {addresses[0]} only; "
                f"also claimed by {', '.join(addresses[1:])}"
            )
        if summary["points"] == 0:
            raise CommandError("No enabled points: run `manage.py discover` first.")
        if summary["devices_ok"] == 0:
            raise CommandError("No device answered.")
