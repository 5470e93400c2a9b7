"""`manage.py simulate_site`: run a simulated BACnet site until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from discovery.simulator import SiteSpec, run_site


class Command(BaseCommand):
    help = (
        "Run simulated BACnet/IP devices (bacpypes3) for the demo and the tests. Loopback "
        "mode needs no root: devices register with a BBMD on --host:--bbmd-port, and a "
        "client registered with the same BBMD discovers them with a global Who-Is."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        d = SiteSpec()
        parser.add_argument("--devices", type=int, default=d.devices, help="normal devices")
        parser.add_argument("--objects", type=int, default=d.objects, help="objects per device")
        parser.add_argument("--host", default=d.host, help="IPv4 address (bridge: 198.18.X)")
        parser.add_argument(
            "--bbmd-port", type=int, default=d.bbmd_port, help="0 picks a free port"
        )
        parser.add_argument(
            "--base-port",
            type=int,
            default=d.base_port,
            help="first device port, the others follow; 0 picks free ports",
        )
        parser.add_argument("--first-instance", type=int, default=d.first_instance)
        parser.add_argument("--bbmd-instance", type=int, default=d.bbmd_instance)
        parser.add_argument(
            "--name-pattern", default=d.name_pattern, help="device names, with {instance}"
        )
        parser.add_argument(
            "--faults",
            action="store_true",
            help="add the fault devices: no-segmentation, no-rpm, silent, malformed, "
            "hostile, and two routed devices behind network 20",
        )
        parser.add_argument("--vary", action="store_true", help="present values change over time")
        parser.add_argument(
            "--alarms",
            action="store_true",
            help="with --vary: analog input 1 of each normal device is in alarm (its "
            "in-alarm flag set) while above its base value, half of every 20 s",
        )
        parser.add_argument(
            "--big-object-list",
            type=int,
            default=0,
            metavar="N",
            help="add one device with N objects",
        )
        parser.add_argument("--ready-file", default=None, help="JSON written once ready")
        parser.add_argument("--seed", type=int, default=d.seed, help="seed of the value phases")
        parser.add_argument("--mode", choices=["loopback", "bridge"], default=d.mode)
        parser.add_argument(
            "--fd-ttl", type=int, default=d.fd_ttl, help="foreign-device TTL, seconds"
        )
        parser.add_argument(
            "--join-bbmd",
            default="",
            metavar="HOST:PORT",
            help="register the devices with this running BBMD instead of starting one",
        )
        parser.add_argument(
            "--silent-after",
            type=int,
            default=0,
            metavar="N",
            help="devices stop answering anything after N confirmed requests (0: never)",
        )
        parser.add_argument(
            "--drop-who-is",
            type=int,
            default=0,
            metavar="N",
            help="devices ignore their first N Who-Is (a busy device dropping a broadcast)",
        )
        parser.add_argument(
            "--answer-delay",
            type=float,
            default=0.0,
            metavar="S",
            help="devices answer each confirmed request S seconds late",
        )
        parser.add_argument(
            "--ignore-rpm",
            action="store_true",
            help="devices never answer ReadPropertyMultiple (it times out); ReadProperty works",
        )
        parser.add_argument(
            "--value-offset", type=float, default=0.0, help="added to every analog value"
        )
        parser.add_argument(
            "--outputs",
            action="store_true",
            help="normal devices also get commandable analog, binary and multi-state outputs",
        )
        parser.add_argument(
            "--events",
            action="store_true",
            help="normal devices also report alarms intrinsically (notification class 1, "
            "out-of-range analog input 9001, change-of-state binary input 9002)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        spec = SiteSpec(
            devices=options["devices"],
            objects=options["objects"],
            host=options["host"],
            bbmd_port=options["bbmd_port"],
            base_port=options["base_port"],
            first_instance=options["first_instance"],
            faults=options["faults"],
            vary=options["vary"],
            alarms=options["alarms"],
            big_object_list=options["big_object_list"],
            seed=options["seed"],
            mode=options["mode"],
            bbmd_instance=options["bbmd_instance"],
            name_pattern=options["name_pattern"],
            fd_ttl=options["fd_ttl"],
            join_bbmd=options["join_bbmd"],
            silent_after=options["silent_after"],
            drop_who_is=options["drop_who_is"],
            answer_delay_s=options["answer_delay"],
            ignore_rpm=options["ignore_rpm"],
            value_offset=options["value_offset"],
            outputs=options["outputs"],
            events=options["events"],
        )
        try:
            spec.validate()
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        _setup_logging(int(options.get("verbosity", 1)))
        from discovery.simulator.site import SiteError

        try:
            run_site(spec, options["ready_file"])
        except SiteError as exc:
            raise CommandError(str(exc)) from exc


def _setup_logging(verbosity: int) -> None:
    logger = logging.getLogger("discovery.simulator")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    logger.propagate = False
    # bacpypes3 logs a traceback for each datagram it cannot decode, and the fault tests
    # send thousands on purpose: show them only at -v 2.
    logging.getLogger("bacpypes3").setLevel(logging.WARNING if verbosity > 1 else logging.CRITICAL)
