"""A user of the deployment: a browser on the same host, speaking HTTP to the web's
published port only (and to Flower's), and what the user does with it: log in, Start
Discovery, request a collection, read the results through the REST API, run a periodic
task from the admin."""

from __future__ import annotations

import base64
import http.client
import json
import re
from dataclasses import dataclass
from datetime import datetime
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

from tests.deploy.containers import Deployment, create_superuser, wait_for
from tests.timing import scaled


@dataclass
class Page:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


class Browser:
    """A browser on the deployment's host, speaking HTTP to the published port only.

    It keeps cookies the way browsers do for http://localhost, Secure ones included
    (the product marks them Secure when DEBUG is off; Python's cookie jar would drop
    them over plain HTTP), and sends the CSRF token as a form field or header."""

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self.cookies: dict[str, str] = {}

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = scaled(10),
    ) -> Page:
        sent = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body: bytes | None = None
        if form is not None:
            body = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            body = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        if method not in ("GET", "HEAD"):
            sent["Origin"] = self.origin
            if "csrftoken" in self.cookies:
                sent.setdefault("X-CSRFToken", self.cookies["csrftoken"])
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            page = Page(response.status, response.headers, response.read())
        finally:
            connection.close()
        for header in page.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return page

    def get(self, path: str) -> Page:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str]) -> Page:
        return self.request("POST", path, form={**form, "csrfmiddlewaretoken": self.csrf()})

    def csrf(self) -> str:
        if "csrftoken" not in self.cookies:
            self.get("/accounts/login/")
        return self.cookies["csrftoken"]

    def log_in(self, username: str, password: str) -> None:
        self.cookies.clear()
        page = self.post("/accounts/login/", {"username": username, "password": password})
        assert page.status == 302, f"login answered {page.status}: {page.text[:500]}"
        assert "sessionid" in self.cookies, "no session after logging in"

    def api(self, path: str) -> Any:
        page = self.get(path)
        assert page.status == 200, f"GET {path}: {page.status} {page.text[:500]}"
        return page.json()


def basic_auth_status(host: str, port: int, path: str, login: str | None) -> int:
    """GET with an optional HTTP basic login (Flower); the status code."""
    headers = {}
    if login:
        headers["Authorization"] = "Basic " + base64.b64encode(login.encode()).decode()
    connection = http.client.HTTPConnection(host, port, timeout=scaled(5))
    try:
        connection.request("GET", path, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


# ------------------------------------------------------------------ what a user does


FINISHED = ("completed", "failed")


def wait_for_job(browser: Browser, job_id: int, timeout_s: float) -> dict[str, Any]:
    """Follow a job through the API until it is completed or failed."""

    def finished() -> dict[str, Any] | None:
        job = browser.api(f"/api/jobs/{job_id}/")
        return job if job["status"] in FINISHED else None

    return wait_for(f"job {job_id} finished", finished, timeout_s)


def start_discovery(browser: Browser) -> int:
    """Press Start Discovery on the dashboard (a global Who-Is); the job's number, as
    the page's message says it."""
    assert browser.get("/").status == 200
    page = browser.post("/discover/", {"low": "", "high": "", "targets": ""})
    assert page.status == 302, f"Start Discovery answered {page.status}: {page.text[:500]}"
    dashboard = browser.get(page.headers["Location"])
    match = re.search(r"Discovery job (\d+) requested", dashboard.text)
    assert match, "the dashboard does not say which job was requested"
    return int(match.group(1))


def assert_site_discovered(browser: Browser, site: Any) -> None:
    """Every device of the simulated site (and the BBMD's own) is listed, each with all
    its points."""
    devices = browser.api("/api/devices/?limit=1000")["results"]
    assert {device["device_instance"] for device in devices} == {
        site.bbmd_device_instance,
        *(device["instance"] for device in site.devices),
    }
    for device in site.devices:
        listed = count(browser, f"/api/points/?device_instance={device['instance']}")
        assert listed == len(device["objects"]), device["instance"]


def assert_cycle_stored(browser: Browser, job: dict[str, Any]) -> None:
    """A completed collection job stored one reading per point at its cycle's time."""
    cycle_at = datetime.fromisoformat(job["result"]["cycle_at"])
    query = urlencode({"start": cycle_at.isoformat(), "page_size": 1000})
    readings = browser.api(f"/api/readings/?{query}")["results"]
    in_cycle = [r for r in readings if datetime.fromisoformat(r["timestamp"]) == cycle_at]
    assert len(in_cycle) == count(browser, "/api/points/"), job["result"]


def request_collection(browser: Browser) -> int:
    """A collection cycle of every point, requested through the REST API."""
    page = browser.request("POST", "/api/jobs/", json_body={"kind": "collect", "parameters": {}})
    assert page.status == 201, f"POST /api/jobs/ answered {page.status}: {page.text[:500]}"
    return int(page.json()["id"])


def count(browser: Browser, path: str) -> int:
    """How many objects a paginated list of the API holds."""
    separator = "&" if "?" in path else "?"
    return int(browser.api(f"{path}{separator}limit=1")["count"])


def run_periodic_task_from_admin(browser: Browser, name: str) -> None:
    """The admin's "Run selected tasks" on one periodic task, found by its name."""
    changelist = "/admin/django_celery_beat/periodictask/"
    page = browser.get(f"{changelist}?{urlencode({'q': name})}")
    assert page.status == 200, f"admin list: {page.status}"
    ids = re.findall(r'name="_selected_action" value="(\d+)"', page.text)
    assert len(ids) == 1, f"{name!r}: {len(ids)} periodic tasks in the admin"
    result = browser.post(changelist, {"action": "run_tasks", "_selected_action": ids[0]})
    assert result.status == 302, f"run_tasks answered {result.status}"


def logged_in_browser(deployment: Deployment) -> Browser:
    """A superuser made as the README says, logged in through the published web port."""
    username, password = create_superuser(deployment)
    browser = Browser("127.0.0.1", int(deployment.env_values["WEB_PORT"]))
    browser.log_in(username, password)
    return browser
