import logging

import pytest
from django.core.exceptions import ImproperlyConfigured

from bacnet_project import platform_detection
from bacnet_project.platform_detection import detect_bacnet_backend


def test_the_override_wins_over_everything():
    backend, reason = detect_bacnet_backend(
        {"BACNET_BACKEND": "database"}, system="Linux", in_docker=True
    )
    assert backend == "database"
    assert "BACNET_BACKEND" in reason


@pytest.mark.parametrize(("word", "expected"), [("docker", "celery"), ("native", "database")])
def test_it_accepts_seed_001_words_as_aliases(word, expected):
    assert detect_bacnet_backend({"BACNET_BACKEND": word.upper()})[0] == expected


def test_inside_docker_it_uses_celery():
    assert detect_bacnet_backend({}, system="Windows", in_docker=True)[0] == "celery"


def test_docker_env_variable_counts_as_docker(monkeypatch):
    assert platform_detection.running_in_docker({"DOCKER_ENV": "1"})


def test_native_windows_uses_the_database_backend():
    assert detect_bacnet_backend({}, system="Windows", in_docker=False) == (
        "database",
        "native Windows host",
    )


@pytest.mark.parametrize("system", ["Linux", "Darwin"])
def test_linux_and_macos_use_celery(system):
    assert detect_bacnet_backend({}, system=system, in_docker=False)[0] == "celery"


def test_an_unknown_name_is_a_configuration_error():
    with pytest.raises(ImproperlyConfigured, match="BACNET_BACKEND"):
        detect_bacnet_backend({"BACNET_BACKEND": "http"})


def test_it_logs_its_choice_once_without_emoji(monkeypatch, caplog):
    monkeypatch.setattr(platform_detection, "_logged", False)
    with caplog.at_level(logging.INFO, logger="bacnet_project.platform_detection"):
        platform_detection.log_backend_choice("celery", "Linux host")
        platform_detection.log_backend_choice("celery", "Linux host")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["BACnet backend: celery (Linux host)"]
    assert messages[0].isascii()
