"""A labgrid run as a whole: how many workers ``-n auto`` starts, and what the run says about its places.

One worker per matching place: with N boards of the farm free for the rig, ``-n auto`` starts N workers
(no more than the run has groups of cases), each takes one place, and the run writes one report. At the end the
controller reads the run's pool (``harness.farm.provider.RunPool``) and says which place ran which
worker's cases, how long each waited, and which places were taken out of the pool and why: on the
terminal and in the Allure report's environment.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def auto_workers(rig, boards, cases) -> int:
    """Workers for ``-n auto`` on a labgrid rig: per farm board, its matching places (at most its groups of
    cases), plus one per other board; the coordinator's places are read once (1 per farm board if it does not
    answer)."""
    from .client import FarmClient, FarmError, FarmUnavailable

    groups: dict[str, int] = {}
    for board, _device, _kind in cases:
        groups[board] = groups.get(board, 0) + 1
    places = None
    try:
        reader = FarmClient(rig.labgrid.address)
        try:
            places = reader.places()
        finally:
            reader.close()
    except (FarmError, FarmUnavailable):
        pass
    total = 0
    for spec in boards:
        if spec.name not in groups:
            continue
        if spec.farm is None:
            total += groups[spec.name] if spec.virtual else 1
            continue
        matching = 1
        if places is not None:
            if spec.farm.place:
                matching = int(spec.farm.place in places)
            else:
                matching = sum(1 for p in places.values() if spec.farm.tags.items() <= p.tags.items())
        total += max(1, min(matching, groups[spec.name]))
    return max(1, total)


def run_summary(rig, results_dir: str | None) -> list[tuple[str, bool]]:
    """Lines about the run's places (``(text, is_a_problem)``); also written to ``environment.properties``."""
    from .job import job_id
    from .provider import RUN_DIR_ENV, RunPool

    directory = os.environ.get(RUN_DIR_ENV)
    if not directory or not (Path(directory) / "pool.json").exists():
        return []
    data = RunPool(Path(directory)).read()
    lines: list[tuple[str, bool]] = []
    props = {"labgrid.coordinator": rig.labgrid.address, "labgrid.job": job_id()}
    for place, uses in sorted(data["used"].items()):
        text = ", ".join(f"board {u['board']} for {u['worker']} (waited {u['waited']:.1f} s, acquired in "
                         f"{u['acquire']:.1f} s)" for u in uses)
        lines.append((f"labgrid place {place}: {text}", False))
        props[f"labgrid.place.{place}"] = text
    for place, why in sorted(data["excluded"].items()):
        lines.append((f"labgrid place {place} was taken out of this run's pool: {why}", True))
        props[f"labgrid.out_of_pool.{place}"] = why
    for place, failures in sorted(data["failures"].items()):
        if place not in data["excluded"]:
            lines.append((f"labgrid place {place} failed its checks once ({failures[-1]['reason']}) and stayed "
                          f"in the pool", False))
    if results_dir:
        with contextlib.suppress(OSError):
            _add_environment(Path(results_dir), props)
    return lines


def _add_environment(results: Path, props: dict[str, str]) -> None:
    """Append ``props`` to the report's ``environment.properties`` (written by the workers)."""
    import tempfile

    from .. import report

    with tempfile.TemporaryDirectory() as tmp:
        written = report.write_environment(tmp, props).read_text(encoding="ascii")
    path = results / "environment.properties"
    existing = path.read_text(encoding="ascii") if path.exists() else ""
    kept = "".join(line for line in existing.splitlines(keepends=True) if not line.startswith("labgrid."))
    results.mkdir(parents=True, exist_ok=True)
    path.write_text(kept + written, encoding="ascii")
