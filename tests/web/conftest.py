"""Fixtures of the web tests: a logged-in browser-like client and an API client."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.web.factories import UserFactory


@pytest.fixture
def user(db):
    return UserFactory(username="operator")


@pytest.fixture
def logged_in(client: Client, user) -> Client:
    client.force_login(user)
    return client


@pytest.fixture
def api(user) -> APIClient:
    api_client = APIClient()
    api_client.force_authenticate(user=user)
    return api_client
