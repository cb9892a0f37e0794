"""Each device implementation's mutations: the agent's text edits, the C client's sdkconfig overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import mutations as m
from harness.devices import DEVICES
from harness.mutations import MutationError, apply_mutation, check_mutation, mutation

AGENT_MUTATIONS, IDF_MUTATIONS = m.AGENT_MUTATIONS, m.IDF_MUTATIONS

KCONFIG = Path(__file__).resolve().parents[2] / "device_fw" / "esp_idf" / "main" / "Kconfig.projbuild"


def test_names_are_unique_across_devices_and_each_belongs_to_a_device():
    assert len(m.MUTATIONS) == len(AGENT_MUTATIONS) + len(IDF_MUTATIONS) + len(m.SDK_MUTATIONS)
    for device, mutations in m.DEVICE_MUTATIONS.items():
        assert device in DEVICES
        assert all(x.device == device for x in mutations.values())


def test_the_agent_s_mutations_give_the_files_to_deploy():
    files = apply_mutation("no-version-check")
    assert list(files) == ["lib/otautil.py"] and b"if False:" in files["lib/otautil.py"]
    for name in AGENT_MUTATIONS:
        check_mutation(name)  # every text edit still applies to the agent


def test_the_client_s_mutations_are_sdkconfig_overrides():
    assert mutation("skip-version-check").apply() == {"OTA_CLIENT_MUTATION_SKIP_VERSION_CHECK": True}
    assert apply_mutation("skip-cert-verify") == {"ESP_TLS_INSECURE": True, "ESP_TLS_SKIP_SERVER_CERT_VERIFY": True}


@pytest.mark.skipif(not KCONFIG.exists(), reason="device_fw/esp_idf has no Kconfig.projbuild")
def test_every_test_switch_of_the_client_has_a_mutation():
    switches = set(re.findall(r"^\s*config (OTA_CLIENT_MUTATION_\w+)", KCONFIG.read_text(), re.MULTILINE))
    overridden = {option for x in IDF_MUTATIONS.values() for option in x.options if option.startswith("OTA_CLIENT")}
    assert switches == overridden


def test_an_unknown_mutation_lists_each_device_s():
    with pytest.raises(MutationError) as caught:
        mutation("nope")
    message = str(caught.value)
    assert message.startswith("unknown mutation 'nope' (known: micropython: ")
    assert "esp-idf: no-redirects, " in message
