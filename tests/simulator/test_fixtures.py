"""The shared fixtures other tests build on."""

from __future__ import annotations

import pytest

from tests.simulator.test_site import run_probe
from tests.site_fixtures import (
    SimulatedSite,
    simulated_site,  # noqa: F401 - pytest fixture
)


def test_it_provides_three_varying_devices_of_eight_objects(
    simulated_site: SimulatedSite,  # noqa: F811
) -> None:
    assert simulated_site.ready["vary"] is True
    assert [d["role"] for d in simulated_site.devices] == ["normal"] * 3
    assert simulated_site.normal_devices == simulated_site.devices
    assert all(len(d["objects"]) == 8 for d in simulated_site.devices)
    assert simulated_site.router is None
    probe = run_probe(simulated_site)
    found = {instance for instance, _address in probe["discovered"]}
    assert found == {d["instance"] for d in simulated_site.devices} | {4194000}
    for dev in simulated_site.devices:
        assert "value" in probe["reads"][str(dev["instance"])]["present_value"]


def test_it_says_which_role_is_missing(simulated_site: SimulatedSite) -> None:  # noqa: F811
    with pytest.raises(KeyError, match="silent"):
        simulated_site.device("silent")
