"""Device implementations with one safety check switched off, to show each scenario catches its fault.

``pytest scenarios/ --mutation NAME`` (or its older name ``--agent-mutation``) runs the
device implementation the mutation belongs to with the named change, and only that device's
cases; the scenario that guards that check must then fail.

* The MicroPython agent's mutations are exact text replacements in one agent module: if the
  text is no longer there (the agent changed), the mutation fails loudly instead of silently
  testing the unmodified agent.
* The ESP-IDF client's are sdkconfig overrides of its test switches (``main/Kconfig.projbuild``,
  menu "OTA client test mutations") and of ESP-IDF's own options, given to the host build.
* The ESP8266 SDK client's are its ``OTA_CLIENT_MUTATION_*`` macros, defined for the host build.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .deploy import AGENT_DIR


class MutationError(ValueError):
    pass


@dataclass(frozen=True)
class Mutation:
    """A MicroPython agent module with one check switched off: :meth:`apply` gives the files to deploy."""

    name: str
    module: str  # file under device_fw/micropython/lib
    edits: tuple[tuple[str, str], ...]  # (text, replacement), each text occurring exactly once
    guards: str  # the scenario (and update kind) that must catch it
    device = "micropython"

    def source(self) -> bytes:
        path = AGENT_DIR / "lib" / self.module
        text = path.read_text()
        for find, replace in self.edits:
            if text.count(find) != 1:
                raise MutationError(f"mutation {self.name}: {find!r} occurs {text.count(find)} times in "
                                    f"{path} (expected once); update harness/mutations.py")
            text = text.replace(find, replace)
        return text.encode()

    def apply(self) -> dict[str, bytes]:
        """The agent files to deploy instead of the real ones, as {path on the board: content}."""
        return {f"lib/{self.module}": self.source()}


@dataclass(frozen=True)
class SdkconfigMutation:
    """The ESP-IDF client built with sdkconfig overrides (names without ``CONFIG_``): :meth:`apply` gives them."""

    name: str
    options: Mapping[str, bool | int | str] = field(hash=False)
    guards: str
    #: the configuration of the client it belongs to (``esp-idf``, or ``esp-idf-anti-rollback`` for a check only
    #: that build exercises)
    device: str = "esp-idf"

    def apply(self) -> dict[str, bool | int | str]:
        return dict(self.options)


@dataclass(frozen=True)
class MacroMutation:
    """The ESP8266 SDK client compiled with one of its test switches defined (``-D<macro>=1``)."""

    name: str
    macro: str
    guards: str
    device: str = "esp8266-sdk"

    def apply(self) -> dict[str, bool | int | str]:
        return {self.macro: True}


AGENT_MUTATIONS = {m.name: m for m in (
    Mutation("fw-write-over-running", "otafw.py",
             (("self.part = self.run.get_next_update()", "self.part = self.run"),
              ("        check_rollback_possible(self.run, self.part)\n", "")),
             "power loss mid-write (firmware)"),
    Mutation("files-write-in-place", "otafiles.py",
             (('self.slot = "b" if self.st["active"] == "a" else "a"', 'self.slot = self.st["active"]'),),
             "power loss mid-write (files)"),
    Mutation("fw-no-digest-check", "otafw.py",
             (("if self.sha256 is not None and got != self.sha256:", "if False:"),),
             "bad hash (firmware)"),
    Mutation("files-no-digest-check", "otafiles.py",
             (('if hexdigest(self.h) != entry["sha256"]:', "if False:"),
              ('if n != entry["size"] or hexdigest(h) != entry["sha256"]:', 'if n != entry["size"]:')),
             "bad hash (files)"),
    Mutation("no-version-check", "otautil.py",
             (("if str(offered) == str(running):", "if False:"),),
             "same-version rejection"),
    Mutation("fw-confirm-without-health", "otafw.py",
             (("            if healthy():\n                Partition.mark_app_valid_cancel_rollback()",
               "            if True:\n                Partition.mark_app_valid_cancel_rollback()"),),
             "rollback (firmware)"),
    Mutation("fw-rollback-without-reset", "otafw.py",
             (('reason="health-failed", detail=reason)\n    machine.reset()',
               'reason="health-failed", detail=reason)\n    return False'),),
             "rollback (firmware)"),
    Mutation("files-confirm-without-health", "otafiles.py",
             (("if ok and healthy():", "if True:"),),
             "rollback (files)"),
    Mutation("fw-no-header-check", "otafw.py",
             (("        if self.block == 0:\n            self._check_header()\n", ""),),
             "invalid images: random data, another chip's image"),
    Mutation("http-no-redirects", "otahttp.py",
             (('if status in (301, 302, 303, 307, 308) and "location" in headers:', "if False:"),),
             "update behind redirects"),
    Mutation("http-no-chunked", "otahttp.py",
             (('self.chunked = "chunked" in headers.get("transfer-encoding", "")', "self.chunked = False"),),
             "chunked transfer"),
    Mutation("tls-no-verify", "otahttp.py",
             (("ctx.verify_mode = ssl.CERT_REQUIRED", "ctx.verify_mode = ssl.CERT_NONE"),),
             "wrong server certificate"),
    # The slot record replaced non-atomically: the old one removed, then the new one written. (Rewriting it in
    # place with open("w") would still be atomic on littlefs, which commits a file only when it is closed.)
    Mutation("files-state-not-atomic", "otafiles.py",
             (('    tmp = STATE + ".new"\n    with open(tmp, "w") as f:\n        json.dump(st, f)\n'
               '    os.rename(tmp, STATE)\n',
               '    try:\n        os.remove(STATE)\n    except OSError:\n        pass\n'
               '    with open(STATE, "w") as f:\n        json.dump(st, f)\n'),),
             "the power-cut sweep (files): harness/sweep/system.py"),
)}

#: the C client's test switches (``device_fw/esp_idf/main/Kconfig.projbuild``) and ESP-IDF's own TLS options
IDF_MUTATIONS = {m.name: m for m in (
    SdkconfigMutation("skip-version-check", {"OTA_CLIENT_MUTATION_SKIP_VERSION_CHECK": True},
                      "same-version rejection"),
    SdkconfigMutation("skip-sha256-check", {"OTA_CLIENT_MUTATION_SKIP_SHA256_CHECK": True}, "bad hash"),
    SdkconfigMutation("skip-diagnostics", {"OTA_CLIENT_MUTATION_SKIP_DIAGNOSTICS": True}, "rollback"),
    SdkconfigMutation("write-running-slot", {"OTA_CLIENT_MUTATION_WRITE_RUNNING_SLOT": True},
                      "power loss mid-write; invalid images"),
    SdkconfigMutation("no-redirects", {"OTA_CLIENT_MUTATION_NO_REDIRECTS": True}, "redirect"),
    SdkconfigMutation("require-content-length", {"OTA_CLIENT_MUTATION_REQUIRE_CONTENT_LENGTH": True},
                      "chunked transfer"),
    SdkconfigMutation("skip-secure-version-check", {"OTA_CLIENT_MUTATION_SKIP_SECURE_VERSION_CHECK": True},
                      "anti-rollback by secure_version", device="esp-idf-anti-rollback"),
    SdkconfigMutation("skip-cert-verify", {"ESP_TLS_INSECURE": True, "ESP_TLS_SKIP_SERVER_CERT_VERIFY": True},
                      "wrong server certificate"),
)}

#: the ESP8266 SDK client's test switches (device_fw/esp8266_sdk, ``OTA_CLIENT_MUTATION_*``)
SDK_MUTATIONS = {m.name: m for m in (
    MacroMutation("sdk-no-crc-check", "OTA_CLIENT_MUTATION_NO_CRC_CHECK", "bad CRC"),
    MacroMutation("sdk-no-slot-check", "OTA_CLIENT_MUTATION_NO_SLOT_CHECK", "bin linked for the other slot"),
    MacroMutation("sdk-no-version-check", "OTA_CLIENT_MUTATION_NO_VERSION_CHECK", "same-version rejection"),
    MacroMutation("sdk-no-length-check", "OTA_CLIENT_MUTATION_NO_LENGTH_CHECK", "a bin larger than its slot"),
    MacroMutation("sdk-switch-on-short", "OTA_CLIENT_MUTATION_SWITCH_ON_SHORT", "truncated stream"),
    MacroMutation("sdk-no-param-repair", "OTA_CLIENT_MUTATION_NO_PARAM_REPAIR",
                  "boot_v1.x's fallback (the next good update)"),
)}

#: every device's mutations by name (names are unique across devices)
MUTATIONS: dict[str, Mutation | SdkconfigMutation | MacroMutation] = {**AGENT_MUTATIONS, **IDF_MUTATIONS,
                                                                      **SDK_MUTATIONS}
#: the mutations of each device implementation
DEVICE_MUTATIONS = {"micropython": AGENT_MUTATIONS,
                    **{device: {n: m for n, m in IDF_MUTATIONS.items() if m.device == device}
                       for device in dict.fromkeys(m.device for m in IDF_MUTATIONS.values())},
                    "esp8266-sdk": SDK_MUTATIONS}


def mutation(name: str) -> Mutation | SdkconfigMutation | MacroMutation:
    """The mutation ``name``; an unknown name is an error listing each device's."""
    try:
        return MUTATIONS[name]
    except KeyError:
        known = "; ".join(f"{device}: {', '.join(sorted(names))}" for device, names in DEVICE_MUTATIONS.items())
        raise MutationError(f"unknown mutation {name!r} (known: {known})") from None


def check_mutation(name: str) -> Mutation | SdkconfigMutation | MacroMutation:
    """The mutation ``name``, checked to apply (an agent mutation whose text is gone is an error now)."""
    m = mutation(name)
    m.apply()
    return m


def apply_mutation(name: str) -> dict:
    """What the mutation changes: agent files {path on the board: content}, or sdkconfig overrides."""
    return mutation(name).apply()
