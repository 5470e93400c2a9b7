"""Timeouts that agree: one cause, one reason, whatever the settings; no asyncio error
left for the log; a Who-Is a busy device dropped is sent again."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from discovery.bacnet_client import BACnetClient, ClientConfig
from discovery.bacnet_types import DeviceTarget, PointRef
from tests.bacnet.conftest import fast_config
from tests.site_fixtures import SimulatedSite


def test_it_keeps_the_request_deadline_above_the_stacks_own_retries() -> None:
    same = ClientConfig(apdu_timeout_ms=3000, apdu_retries=1, request_deadline_s=6.0)
    assert same.request_timeout_s > 6.0
    roomy = ClientConfig(apdu_timeout_ms=500, apdu_retries=1, request_deadline_s=10.0)
    assert roomy.request_timeout_s == 10.0
    assert ClientConfig().request_timeout_s > ClientConfig().apdu_total_s


def test_it_reports_a_silent_device_with_one_text_and_no_asyncio_error(
    site: SimulatedSite, caplog: pytest.LogCaptureFixture
) -> None:
    """The request deadline set equal to the APDU total (as the old defaults were): the
    same silent device, read again and again, gets the same reason every time."""
    silent = site.device("silent")
    base = fast_config(bbmd_address=site.bbmd, bbmd_ttl=60)
    config = replace(base, request_deadline_s=base.apdu_total_s)
    target = DeviceTarget(
        silent["instance"], silent["address"], [PointRef("analog-input", 1)], supports_rpm=False
    )
    caplog.set_level(logging.DEBUG, logger="asyncio")
    with BACnetClient(config) as client:
        errors = {client.read_points([target])[0].error.split(";")[0] for _ in range(3)}
    assert len(errors) == 1, errors
    (error,) = errors
    # "no answer within 3 s (BACNET_APDU_TIMEOUT_MS 1500 x 2 attempts)" at factor 3
    assert config.no_answer_text in error and "BACNET_APDU_TIMEOUT_MS" in error
    assert not [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]
