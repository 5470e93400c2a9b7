"""/healthz tells the Docker healthcheck whether the database answers."""

from __future__ import annotations

import socket

import pytest
from django.db import connection
from django.urls import reverse


def closed_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db
def test_it_answers_ok_when_the_database_answers(client):
    response = client.get(reverse("discovery:healthz"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_answers_503_when_the_database_is_unreachable(client, monkeypatch):
    # A real unreachable server: nothing listens on this port.
    monkeypatch.setitem(connection.settings_dict, "HOST", "127.0.0.1")
    monkeypatch.setitem(connection.settings_dict, "PORT", str(closed_tcp_port()))
    connection.close()
    try:
        response = client.get(reverse("discovery:healthz"))
    finally:
        connection.close()
    assert response.status_code == 503
    assert response.json()["status"] == "error"
