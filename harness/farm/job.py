"""Who holds a place: the job and the worker, in ``LG_USERNAME``.

labgrid records a holder as ``host/user`` and keeps a place acquired when its holder dies without
releasing it (a SIGKILL, a runner's timeout). So each process of a run takes places under
``<job>-<worker>`` (``ci-4711-gw0``, ``ci-4711-main`` without xdist): ``hil farm release --job ci-4711``
then frees everything the job still holds, whichever of its processes took it. The job id is
``HIL_FARM_JOB`` (a CI job sets it, e.g. from its run id; otherwise the pytest controller sets it to
``<user>-<pid>``, and its xdist workers inherit it).
"""

from __future__ import annotations

import getpass
import os
import re

JOB_ENV = "HIL_FARM_JOB"
#: what a job id may be made of (it becomes part of a labgrid user name)
JOB_ID = re.compile(r"[A-Za-z0-9_.+-]+")


def default_job() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a bare container
        user = f"uid{os.getuid()}"
    return f"{re.sub(r'[^A-Za-z0-9_.+-]', '_', user)}-{os.getpid()}"


def job_id() -> str:
    job = os.environ.get(JOB_ENV) or default_job()
    if not JOB_ID.fullmatch(job):
        raise ValueError(f"{JOB_ENV}={job!r}: a job id is letters, digits and _ . + -")
    return job


WORKER_ENV = "HIL_FARM_WORKER"


def worker_name() -> str:
    """This process's worker id (``gw0``; ``main`` without xdist): what the pytest plugin set for this process
    (a pytest run started inside an xdist worker inherits that worker's PYTEST_XDIST_WORKER)."""
    return os.environ.get(WORKER_ENV) or os.environ.get("PYTEST_XDIST_WORKER") or "main"


def worker_user() -> str:
    """``<job>-<worker>``, set as ``LG_USERNAME`` before this process's labgrid session starts."""
    user = f"{job_id()}-{worker_name()}"
    os.environ["LG_USERNAME"] = user
    return user


def held_by_job(user: str | None, job: str) -> bool:
    """Whether labgrid user ``user`` (or ``host/user``) is one of job ``job``'s processes."""
    if not user:
        return False
    user = user.split("/", 1)[-1]
    return user == job or user.startswith(job + "-")
