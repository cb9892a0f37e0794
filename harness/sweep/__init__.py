"""The power-cut sweep: record an update's flash operations once, then cut the power at every one of them.

:mod:`harness.sweep.record` records an update on a virtual board (:func:`record_update` gives a
:class:`Recording`: every flash operation from the trigger until the new version is confirmed, and
the flash before and after). :mod:`harness.sweep.boot_sweep` replays a recording cut at each
operation under each tear policy and asks the bootloader model what boots (no process);
:mod:`harness.sweep.system` cuts a real run of the virtual board at chosen operations.
:mod:`harness.sweep.bench` cuts a board through its power switch by bytes sent and by console events (a bench
board too); :mod:`harness.sweep.report` writes a sweep's results for the Allure report.
"""

from .record import FlashOp, Recording, record_update

__all__ = ["FlashOp", "Recording", "record_update"]
