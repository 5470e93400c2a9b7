"""``manage.py bacnet_worker``: the database-backend BACnet worker (no broker).

It claims its site's pending ``BACnetTask`` rows, runs them, and also runs the periodic
collection, rollups and job sweeping that beat does in Celery mode. One per site (and
BACnet interface): ``--site hq``; without it, the default site."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from discovery.database_worker import DatabaseWorker
from discovery.management.commands._bacnet_options import add_bacnet_options, apply_bacnet_options


class Command(BaseCommand):
    help = "Run the database-backend BACnet worker loop (claims pending jobs from the database)."

    def add_arguments(self, parser: Any) -> None:
        add_bacnet_options(parser)
        parser.add_argument(
            "--name", help="Worker name shown in the UI (default bacnet-database@host)."
        )
        parser.add_argument("--once", action="store_true", help="Run pending jobs, then exit.")
        parser.add_argument(
            "--poll",
            type=float,
            help="Safety-net poll period, seconds (default 10 on "
            "PostgreSQL, which wakes on NOTIFY; 1 on SQLite).",
        )
        parser.add_argument(
            "--no-schedule",
            action="store_true",
            help="Do not run periodic collection and rollups (another worker or beat does).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # The worker serves the site named: its queue, its rows, its LAN. It keeps
        # BACNET_DEVICE_INSTANCE (tools take one of their own).
        site = apply_bacnet_options(options, tool=False)
        DatabaseWorker(
            options["name"],
            poll_s=options["poll"],
            schedule=not options["no_schedule"],
            site=site,
        ).run(once=options["once"])
