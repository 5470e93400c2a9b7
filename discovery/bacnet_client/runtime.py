"""The running stack: one BAC0 application on an event-loop thread of its own.

``ClientRuntime`` starts and stops it and runs coroutines on it for caller threads
(``_submit``, ``_run``); ``client.BACnetClient`` adds the BACnet operations on top. Why
this shape:

- BAC0 is async-only: its constructor needs a running loop, so it is built on the loop
  thread, always with ``ip="A.B.C.D/len"``.
- One BACnet/IP socket per host interface: bacpypes3 binds with SO_REUSEPORT, and two
  processes on the same ip:port split the replies between them (``config.check_bindable``
  refuses to start then).
- Every I-Am is recorded with its source address as it arrives (``_hook_i_am``), so that
  ``discover()`` can return as soon as the network is quiet.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Self

from discovery.bacnet_client.config import (
    DEFAULT_PORT,
    ClientConfig,
    InterfaceSpec,
    check_bindable,
    parse_bbmd_address,
    resolve_interface,
)
from discovery.bacnet_client.convert import enum_text, int_or_none, safe_text
from discovery.bacnet_client.cov import CovReceiver
from discovery.bacnet_client.events import EventReceiver
from discovery.bacnet_client.session import Session
from discovery.bacnet_client.stack import load_stack, quiet_bac0_loggers
from discovery.bacnet_types import BACnetConfigError, BACnetError, BACnetTimeout

log = logging.getLogger(__name__)

# The local device accepts segmented answers of 1476-byte segments, as many as an answer
# needs: above 64, BACnet encodes "more than 64" and a bacpypes3 device then sends any
# number. A 20,000-object list (about 100 kB, over 64 segments) came in one request in
# 0.84 s, against 3.9 s element by element when capped at 64 (docs/bacnet.md).
_LOCAL_MAX_APDU = 1476
_LOCAL_MAX_SEGMENTS = 255


@dataclass
class IAmSeen:
    instance: int
    address: str
    network_number: int | None
    vendor_id: int | None
    max_apdu: int | None
    segmentation: str | None
    at: float = field(default_factory=time.monotonic)


def _loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Errors of the stack's own tasks, which nobody awaits: logged here, once, instead
    of asyncio's "Task exception was never retrieved" traceback."""
    exc = context.get("exception")
    if isinstance(exc, asyncio.InvalidStateError):
        # bacpypes3 completing a request's future after a deadline cancelled it: the
        # request has already failed with its reason, nothing is lost.
        log.debug("BACnet stack completed a cancelled request: %s", context.get("message"))
        return
    log.warning(
        "BACnet stack task failed: %s: %r", context.get("message", "?"), exc, exc_info=False
    )


class ClientRuntime:
    """One BAC0 application on an event-loop thread: start, stop, run coroutines on it.

    The base of ``BACnetClient``; not used on its own."""

    def __init__(self, config: ClientConfig | None = None) -> None:
        self.config = config or ClientConfig()
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._bacnet: Any = None  # the BAC0 Lite instance
        self._app: Any = None  # its bacpypes3 Application
        self._bp: Any = None
        self._interface: InterfaceSpec | None = None
        self._iam_listeners: list[Callable[[IAmSeen], None]] = []
        self.cov = CovReceiver(self)
        self.events = EventReceiver(self)
        self.pid = os.getpid()

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._app is not None and self._thread is not None and self._thread.is_alive()

    @property
    def local_address(self) -> str:
        """The address the client is bound to, "A.B.C.D:port"."""
        if self._interface is None:
            raise BACnetError("the BACnet client is not started")
        return f"{self._interface.ip}:{self._interface.port}"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Bind the BACnet stack. Raises BACnetConfigError when it cannot."""
        with self._lock:
            if self.started:
                return
            spec = resolve_interface(self.config)
            bbmd = self._resolve_bbmd()
            check_bindable(spec.ip, spec.port or DEFAULT_PORT)
            self._bp = load_stack()
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(
                target=self._run_loop, args=(loop, ready), name="bacnet-client-loop", daemon=True
            )
            thread.start()
            ready.wait()
            self._loop, self._thread = loop, thread
            future = asyncio.run_coroutine_threadsafe(self._astart(spec, bbmd), loop)
            try:
                future.result(timeout=self.config.request_deadline_s + 15)
            except BaseException as exc:
                future.cancel()
                self._close_stack()
                self._shutdown_loop()
                if isinstance(exc, BACnetError):
                    raise
                if isinstance(exc, concurrent.futures.TimeoutError):
                    raise BACnetConfigError("the BACnet stack did not start in time") from None
                raise BACnetConfigError(
                    f"the BACnet stack did not start on {spec.ip}/{spec.prefix}:{spec.port}: "
                    f"{type(exc).__name__}: {safe_text(exc)}"
                ) from None
            self._interface = spec
            self.pid = os.getpid()
            log.info(
                "BACnet client started on %s/%s:%s as device %s%s",
                spec.ip,
                spec.prefix,
                spec.port,
                self.config.device_instance,
                f", foreign device of BBMD {bbmd[0]}:{bbmd[1]}" if bbmd else "",
            )

    def _resolve_bbmd(self) -> tuple[str, int] | None:
        if not self.config.bbmd_address:
            return None
        try:
            host, port = parse_bbmd_address(self.config.bbmd_address)
        except ValueError as exc:
            raise BACnetConfigError(f"BACNET_BBMD_ADDRESS {exc}") from None
        try:
            ip = socket.gethostbyname(host)
        except OSError as exc:
            raise BACnetConfigError(f"BBMD host {host!r} does not resolve: {exc}") from None
        if self.config.bbmd_ttl <= 0:
            raise BACnetConfigError("BACNET_BBMD_TTL must be a positive number of seconds")
        return ip, port

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(_loop_exception_handler)
        loop.call_soon(ready.set)
        loop.run_forever()

    async def _astart(self, spec: InterfaceSpec, bbmd: tuple[str, int] | None) -> None:
        bp = self._bp
        before = asyncio.all_tasks()
        kwargs: dict[str, Any] = {
            "ip": f"{spec.ip}/{spec.prefix}",
            "port": spec.port,
            "deviceId": self.config.device_instance,
            "localObjName": f"bacnet-monitor-{self.config.device_instance}",
            "ping": False,
            # BAC0 would otherwise prefer a ~/.BAC0/device.json left by someone else.
            "json_file": bp.bac0_device_json,
        }
        if bbmd:
            kwargs.update(bbmdAddress=f"{bbmd[0]}:{bbmd[1]}", bbmdTTL=self.config.bbmd_ttl)
        try:
            self._bacnet = bp.BAC0.lite(**kwargs)
        except BaseException as exc:  # BAC0 raises its own InitializationError, or worse
            raise BACnetConfigError(
                f"BAC0 could not start on {spec.ip}/{spec.prefix}:{spec.port}: "
                f"{type(exc).__name__}: {safe_text(exc)}"
            ) from None
        quiet_bac0_loggers()  # classes BAC0 decorated while starting, if any
        # BAC0 starts an I-Am task that polls every 10 ms forever and a task-list cleaner;
        # the client needs neither.
        for task in asyncio.all_tasks() - before:
            code = getattr(task.get_coro(), "cr_code", None)
            if code is not None and f"{os.sep}BAC0{os.sep}" in code.co_filename:
                task.cancel()
        app = self._bacnet.this_application.app
        device = app.device_object
        # Timeouts and retries come from the local device object (BACNET_NOTES).
        device.apduTimeout = self.config.apdu_timeout_ms
        device.apduSegmentTimeout = self.config.apdu_timeout_ms
        device.numberOfApduRetries = self.config.apdu_retries
        device.maxApduLengthAccepted = _LOCAL_MAX_APDU
        device.maxSegmentsAccepted = _LOCAL_MAX_SEGMENTS
        self._app = app
        self._hook_i_am(app)
        self.cov.hook(app)
        self.events.hook(app)
        link = next(iter(app.link_layers.values()))
        pending = list(getattr(link.server, "_transport_tasks", []))
        if pending:
            done, _ = await asyncio.wait(pending, timeout=3)
            if len(done) != len(pending):
                raise BACnetConfigError(
                    f"could not bind the BACnet socket on {spec.ip}:{spec.port} (or its "
                    "broadcast address)"
                )
        if bbmd:
            await self._await_registration(link, bbmd)

    async def _await_registration(self, link: Any, bbmd: tuple[str, int]) -> None:
        deadline = time.monotonic() + max(self.config.request_deadline_s, 1.0)
        while time.monotonic() < deadline:
            status = getattr(link, "bbmdRegistrationStatus", 0)
            if status == 0:
                return
            if status > 0:
                raise BACnetConfigError(
                    f"BBMD {bbmd[0]}:{bbmd[1]} refused the foreign-device registration "
                    f"(result code {status})"
                )
            await asyncio.sleep(0.02)
        raise BACnetConfigError(
            f"BBMD {bbmd[0]}:{bbmd[1]} did not answer the foreign-device registration "
            f"within {max(self.config.request_deadline_s, 1.0):g} s"
        )

    def _hook_i_am(self, app: Any) -> None:
        """Record every I-Am (with its source address) before bacpypes3 sees it."""
        original = app.do_IAmRequest
        bp = self._bp

        async def do_IAmRequest(apdu: Any) -> None:  # bacpypes3 dispatches by this name
            try:
                identifier = apdu.iAmDeviceIdentifier
                source = apdu.pduSource
                seen = IAmSeen(
                    instance=int(identifier[1]),
                    address=str(source),
                    network_number=(
                        int(source.addrNet) if isinstance(source, bp.RemoteStation) else None
                    ),
                    vendor_id=int_or_none(apdu.vendorID),
                    max_apdu=int_or_none(apdu.maxAPDULengthAccepted),
                    segmentation=(
                        enum_text(apdu.segmentationSupported)
                        if apdu.segmentationSupported is not None
                        else None
                    ),
                )
            except Exception:
                log.debug("ignoring a malformed I-Am from %s", getattr(apdu, "pduSource", "?"))
                return
            for listener in list(self._iam_listeners):
                listener(seen)
            # Max APDU and segmentation of the device, used by the segmentation machine.
            await app.device_info_cache.set_device_info(apdu)
            await original(apdu)

        app.do_IAmRequest = do_IAmRequest

    def stop(self) -> None:
        """Unregister from the BBMD, free the socket, end the loop thread. Idempotent."""
        with self._lock:
            if self._loop is None:
                return
            self._close_stack()
            self._shutdown_loop()
            self._interface = None
            log.info("BACnet client stopped")

    def _close_stack(self) -> None:
        """Close the BAC0 application, if one was built (also after a failed start)."""
        if self._bacnet is None or self._loop is None:
            return
        if self._thread is None or not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._astop(), self._loop)
        try:
            future.result(timeout=5)
        except BaseException as exc:
            log.warning("BACnet client did not stop cleanly: %r", exc)

    async def _astop(self) -> None:
        bacnet, self._bacnet = self._bacnet, None
        self._app = None
        if bacnet is None:
            return
        app = bacnet.this_application.app
        for link in app.link_layers.values():
            if getattr(link, "bbmdAddress", None) is not None:
                link.unregister()  # tell the BBMD now rather than let the entry expire
        await asyncio.sleep(0.05)  # let the unregistration packet leave
        app.close()
        # BAC0 refuses a second application on an address it remembers as used.
        self._bp.Bac0Base._used_ips.discard(bacnet.localIPAddr)

    def _shutdown_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        self._app = None
        if loop is None:
            return
        if thread is not None and thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._cancel_all_tasks(), loop)
            try:
                future.result(timeout=5)
            except BaseException as exc:
                log.warning("BACnet loop tasks did not all end: %r", exc)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
        if not loop.is_running():
            loop.close()

    @staticmethod
    async def _cancel_all_tasks() -> None:
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=3)
        # Transports close their sockets in callbacks scheduled by close(): run them.
        for _ in range(3):
            await asyncio.sleep(0)

    # -- hooks for code that works below the facade (benchmarks' bare baselines) -------

    @property
    def bp(self) -> Any:
        """The namespace of bacpypes3 names (``stack.load_stack``), once started."""
        if self._bp is None:
            raise BACnetError("the BACnet client is not started")
        return self._bp

    @property
    def application(self) -> Any:
        """The bacpypes3 Application under BAC0: typed requests on the loop thread."""
        if self._app is None:
            raise BACnetError("the BACnet client is not started")
        return self._app

    @contextlib.contextmanager
    def i_am_listener(self, listener: Callable[[IAmSeen], None]) -> Iterator[None]:
        """Call ``listener`` (on the loop thread) with every I-Am while inside."""
        self._iam_listeners.append(listener)
        try:
            yield
        finally:
            self._iam_listeners.remove(listener)

    def run_coroutine(self, coro: Awaitable[Any], timeout: float) -> Any:
        """Run a coroutine on the client's loop from a caller thread and wait for it."""
        if self._loop is None:
            raise BACnetError("the BACnet client is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    # -- running coroutines from caller threads ------------------------------------------

    def _submit(self, coro_factory: Callable[[], Awaitable[Any]]) -> concurrent.futures.Future:
        if not self.started:
            raise BACnetError("the BACnet client is not started")
        if threading.current_thread() is self._thread:
            raise RuntimeError("BACnetClient's blocking API cannot be called from its loop thread")

        async def guarded() -> Any:
            return await coro_factory()

        return asyncio.run_coroutine_threadsafe(guarded(), self._loop)  # type: ignore[arg-type]

    def _run(self, coro_factory: Callable[[], Awaitable[Any]], limit_s: float) -> Any:
        future = self._submit(coro_factory)
        try:
            return future.result(timeout=limit_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise BACnetTimeout(f"BACnet operation did not finish within {limit_s:g} s") from None
        except BACnetError:
            raise
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                future.cancel()
                raise
            # Last line of defence: nothing BaseException-derived leaves the facade.
            raise BACnetError(f"BACnet operation failed: {type(exc).__name__}: {exc}") from None

    def _session(self, instance: int, address: str) -> Session:
        try:
            return Session(self, instance, address)
        except Exception as exc:
            raise BACnetError(
                f"device {instance}: bad address {address!r}: {exc}", device=instance
            ) from None
