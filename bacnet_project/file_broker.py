"""kombu's file broker (the embedded default), safe when processes start together.

kombu's filesystem transport keeps each exchange's bindings in a JSON file. It creates
that file with ``open("wb")`` and locks it only afterwards, so when the workers, beat
and Flower start at the same moment (``make run``) one process can read the new file
empty (a ``JSONDecodeError`` out of a broadcast) or truncate a binding another process
has just written (a worker that no longer hears ``inspect`` or ``ping``). Here the file
is created without truncating, and read, changed and written under one lock; an empty
file is an exchange without bindings yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem

# kombu-stubs lag behind kombu 5.7 here: the lock helpers and _exchange_file are real.
from kombu.transport.filesystem import LOCK_EX, LOCK_SH, lock, unlock  # type: ignore[attr-defined]
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads


def _bindings(raw: bytes) -> list[Any]:
    if not raw.strip():
        return []
    return [filesystem.exchange_queue_t(*entry) for entry in loads(bytes_to_str(raw))]


class Channel(filesystem.Channel):
    def _bindings_file(self, exchange: str) -> Path:
        # kombu's own check that the name stays inside the control folder.
        return self._exchange_file(exchange)  # type: ignore[attr-defined]

    def get_table(self, exchange: str) -> list[Any]:
        file = self._bindings_file(exchange)
        try:
            with file.open("rb", buffering=0) as handle:
                lock(handle, LOCK_SH)
                try:
                    return _bindings(handle.read())
                finally:
                    unlock(handle)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc

    def _queue_bind(
        self, exchange: str, routing_key: str, pattern: str | None, queue: str | None
    ) -> None:
        file = self._bindings_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        try:
            # "a+b" creates the file if need be and never truncates it on opening.
            with file.open("a+b", buffering=0) as handle:
                lock(handle, LOCK_EX)
                try:
                    handle.seek(0)
                    bindings = _bindings(handle.read())
                    if binding not in bindings:
                        bindings.insert(0, binding)
                        handle.truncate(0)
                        handle.write(str_to_bytes(dumps(bindings)))
                finally:
                    unlock(handle)
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc


class Transport(filesystem.Transport):
    Channel = Channel
