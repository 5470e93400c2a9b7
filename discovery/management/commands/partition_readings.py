"""Finish moving readings into time partitions (after migration 0010 was interrupted), or
make partitions ahead now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from discovery.services import partitions


class Command(BaseCommand):
    help = "Move pre-partitioning readings into time partitions, in resumable batches."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch-size", type=int, default=50_000)
        parser.add_argument("--max-batches", type=int, default=None)

    def handle(self, *args: Any, batch_size: int, max_batches: int | None, **_: Any) -> None:
        if not partitions.is_partitioned():
            raise CommandError("The readings table is not partitioned (SQLite, or not migrated).")
        created = partitions.ensure_ahead(timezone.now())
        moved = partitions.migrate_legacy(batch_size, max_batches)
        self.stdout.write(f"{len(created)} partitions created, {moved} readings moved.")
