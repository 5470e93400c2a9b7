"""The embedded file broker when several processes bind queues at the same moment, as
the workers, beat and Flower do when `make run` starts them together."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from kombu import Connection

from bacnet_project.file_broker import Transport

PROCESSES = 6
EXCHANGES = 30


def _connection(folder: Path, transport: object) -> Connection:
    return Connection(
        "filesystem://",
        transport=transport,
        transport_options={
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"),
        },
    )


def _bind_all(folder: Path, transport: object, name: str, start, errors) -> None:
    with _connection(folder, transport) as connection:
        channel = connection.default_channel
        start.wait()
        for n in range(EXCHANGES):
            try:
                channel._queue_bind(f"exchange{n}", "", "", name)
                channel.get_table(f"exchange{n}")
            except Exception as exc:  # reported to the test
                errors.put(f"{name}: {exc!r}")


def _bind_together(folder: Path, transport: object) -> tuple[list[str], list[list[str]]]:
    for sub in ("queue", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    start, errors = context.Barrier(PROCESSES), context.Queue()
    processes = [
        context.Process(target=_bind_all, args=(folder, transport, f"q{i}", start, errors))
        for i in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    found = []
    while not errors.empty():
        found.append(errors.get())
    with _connection(folder, transport) as connection:
        channel = connection.default_channel
        tables = [
            sorted(q.queue for q in channel.get_table(f"exchange{n}")) for n in range(EXCHANGES)
        ]
    return found, tables


def test_processes_binding_at_once_keep_every_binding_and_read_no_half_written_file(tmp_path):
    errors, tables = _bind_together(tmp_path, Transport)
    assert errors == []
    everyone = sorted(f"q{i}" for i in range(PROCESSES))
    assert tables == [everyone] * EXCHANGES


def test_an_empty_bindings_file_is_an_exchange_without_bindings(tmp_path):
    (tmp_path / "control").mkdir()
    (tmp_path / "control" / "lonely.exchange").write_bytes(b"")
    with _connection(tmp_path, Transport) as connection:
        channel = connection.default_channel
        assert channel.get_table("lonely") == []
        channel._queue_bind("lonely", "", "", "q")
        assert [q.queue for q in channel.get_table("lonely")] == ["q"]
