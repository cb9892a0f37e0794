"""The harness's failure types: which part failed decides where the report files a test.

A scenario that fails an assertion is the product's failure (``failed`` in Allure). Every
exception the harness raises about the bench or about itself derives from
:class:`InfrastructureError` through the class of the part that failed, and that class
names its Allure category (``harness.report.categories`` lists each category's types), so a
test that errors is filed by what went wrong, not by how its message happens to read.
"""

from __future__ import annotations


class InfrastructureError(Exception):
    """The bench or the harness failed, not the device under test."""

    category = "Harness errors"


class SerialPortFailure(InfrastructureError):
    """A board's serial port: missing, not opening, esptool or mpremote failing on it, the console."""

    category = "Infrastructure: serial port"


class PowerFailure(InfrastructureError):
    """A power switch that does not answer or is configured wrongly."""

    category = "Infrastructure: power switch"


class ServerFailure(InfrastructureError):
    """An OTA server of the run (HTTP, MQTT broker, ESP8266 FOTA) that cannot start or serve."""

    category = "Infrastructure: OTA server"


class VirtualBoardFailure(InfrastructureError):
    """A virtual board that does not start or stops answering its control endpoint."""

    category = "Infrastructure: virtual board"


class RigFileFailure(InfrastructureError):
    """A rig file that cannot be used."""

    category = "Infrastructure: rig file"


#: the categories of infrastructure failures, in the order the report tries them
CATEGORY_BASES: tuple[type[InfrastructureError], ...] = (
    SerialPortFailure, PowerFailure, ServerFailure, VirtualBoardFailure, RigFileFailure,
)


def failure_types(base: type[InfrastructureError]) -> list[type]:
    """``base`` and every class below it that the harness has defined (its modules imported first)."""
    _import_all()
    found, todo = [], [base]
    while todo:
        cls = todo.pop()
        if cls not in found:
            found.append(cls)
            todo.extend(cls.__subclasses__())
    return found


def _import_all() -> None:
    # the modules that define failure types, so that every subclass exists when the report asks
    import importlib

    for module in ("harness.board", "harness.console", "harness.deploy", "harness.flashing", "harness.ports",
                   "harness.power.base", "harness.rig", "harness.emu.launcher", "harness.scenario",
                   "harness.servers.base"):
        try:
            importlib.import_module(module)
        except ImportError:  # an optional part that is not installed defines nothing to file
            pass
