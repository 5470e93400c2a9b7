"""The job event stream (Server-Sent Events) over a real HTTP connection to a live
server, with PostgreSQL LISTEN/NOTIFY underneath."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import pytest

from discovery.jobs import request_job
from tests.timing import scaled
from tests.web.factories import UserFactory
from tests.web.live import listening_pids
from tests.worker_fixtures import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def quick_keepalive(settings):
    settings.BACNET_EVENTS_KEEPALIVE_S = 1.0


class Stream:
    def __init__(self, live_server, client) -> None:
        client.force_login(UserFactory(username="watcher"))
        address = urlsplit(live_server.url)
        self.conn = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        self.conn.request(
            "GET",
            "/jobs/events/",
            headers={"Cookie": f"sessionid={client.cookies['sessionid'].value}"},
        )
        self.response = self.conn.getresponse()

    def next_event(self, name: str, timeout_s: float = 30) -> str:
        """The data of the next event called ``name`` (other events are skipped)."""
        deadline = time.monotonic() + timeout_s
        current = None
        while time.monotonic() < deadline:
            line = self.response.readline().decode()
            if not line:
                raise AssertionError("the stream ended")
            line = line.rstrip("\n")
            if line.startswith("event: "):
                current = line.removeprefix("event: ")
            elif line.startswith("data: ") and current == name:
                return line.removeprefix("data: ")
            elif not line:
                current = None
        raise AssertionError(f"no {name!r} event within {timeout_s} s")

    def close(self) -> None:
        # The response holds the socket too: closing only the connection would leave
        # it open, and the server would go on writing keep-alives to a live socket.
        self.response.close()
        self.conn.close()


def test_it_streams_a_job_change_to_the_page(live_server, client, quick_keepalive):
    stream = Stream(live_server, client)
    try:
        assert stream.response.status == 200
        assert stream.response.getheader("Content-Type") == "text/event-stream"
        stream.next_event("catch-up")  # the server is listening from here on
        task = request_job("discover", backend="database")
        jobs = json.loads(stream.next_event("jobs"))
        assert {"id": task.pk, "kind": "discover", "status": "pending", "finished": False} in jobs
    finally:
        stream.close()


def test_it_releases_its_database_listener_when_the_browser_goes_away(
    live_server, client, quick_keepalive
):
    # An earlier test's stream may still be listening until its next keep-alive write
    # fails (WSGI tells a server of a gone client no other way): follow our own session.
    before = listening_pids()
    stream = Stream(live_server, client)
    stream.next_event("catch-up")
    ours = listening_pids() - before
    assert len(ours) == 1
    stream.close()
    # The server notices at its next keep-alive (1 s here) and closes the session.
    wait_until(lambda: not ours & listening_pids(), scaled(7), "the LISTEN connection closed")


def test_it_asks_for_a_login_before_streaming(client):
    response = client.get("/jobs/events/")
    assert response.status_code == 302


def test_it_declines_to_stream_from_a_single_threaded_server(client):
    """The test client presents itself as a single-threaded WSGI server, like gunicorn's
    sync workers: a stream there would block every other request."""
    client.force_login(UserFactory(username="watcher"))
    response = client.get("/jobs/events/")
    assert response.status_code == 204
