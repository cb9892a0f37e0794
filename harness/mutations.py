"""Agent builds with one safety check switched off, to show each scenario catches its fault.

``pytest scenarios/ --agent-mutation NAME`` deploys the agent with the named change; the
scenario that guards that check must then fail. Each mutation is an exact text
replacement in one agent module: if the text is no longer there (the agent changed),
the mutation fails loudly instead of silently testing the unmodified agent.
"""

from __future__ import annotations

from dataclasses import dataclass

from .deploy import AGENT_DIR


class MutationError(ValueError):
    pass


@dataclass(frozen=True)
class Mutation:
    name: str
    module: str  # file under device_fw/micropython/lib
    edits: tuple[tuple[str, str], ...]  # (text, replacement), each text occurring exactly once
    guards: str  # the scenario (and update kind) that must catch it

    def apply(self) -> bytes:
        path = AGENT_DIR / "lib" / self.module
        text = path.read_text()
        for find, replace in self.edits:
            if text.count(find) != 1:
                raise MutationError(f"mutation {self.name}: {find!r} occurs {text.count(find)} times in "
                                    f"{path} (expected once); update harness/mutations.py")
            text = text.replace(find, replace)
        return text.encode()


MUTATIONS = {m.name: m for m in (
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
)}


def apply_mutation(name: str) -> dict[str, bytes]:
    """The agent files to deploy instead of the real ones, as {path on the board: content}."""
    try:
        m = MUTATIONS[name]
    except KeyError:
        raise MutationError(f"unknown agent mutation {name!r} (known: {', '.join(sorted(MUTATIONS))})") from None
    return {f"lib/{m.module}": m.apply()}
