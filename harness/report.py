"""What scenarios and fixtures put into the Allure report: steps, attachments, environment, categories.

Scenarios and fixtures call these helpers instead of ``allure`` so that a run without
``--alluredir`` (or without allure-pytest installed at all) behaves the same: every step
and attachment then does nothing. ``harness.report_html`` turns the results into HTML.
"""

from __future__ import annotations

import contextlib
import json
import mimetypes
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import allure
except ImportError:  # the report is optional: pytest runs without allure-pytest too
    allure = None

StrPath = str | os.PathLike[str]


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    """A step of the running test; steps nest, and an exception inside marks the step as failed."""
    if allure is None:
        yield
        return
    with allure.step(title):
        yield


def attach_text(name: str, text: str) -> None:
    """Attach ``text`` (a log, a console capture) to the current step or test."""
    if allure is not None:
        allure.attach(text, name=name, attachment_type=allure.attachment_type.TEXT)


def attach_json(name: str, obj: Any) -> None:
    """Attach ``obj`` as indented JSON; values JSON cannot hold (paths, enums) are written with ``str``."""
    if allure is not None:
        # default=str: an attachment must never be the reason a scenario errors out
        text = json.dumps(obj, indent=2, ensure_ascii=False, default=str)
        allure.attach(text, name=name, attachment_type=allure.attachment_type.JSON)


def attach_file(name: str, path: StrPath, mime: str | None = None) -> None:
    """Attach a copy of the file at ``path``; ``mime`` defaults to the one its extension implies, else text.

    A missing file is attached as a one-line note instead, since the logs worth
    attaching are exactly those of boards and servers that may never have started,
    and a teardown that raises would hide the failure that matters.
    """
    if allure is None:
        return
    path = Path(path)
    if not path.is_file():
        allure.attach(f"{path} does not exist", name=name, attachment_type=allure.attachment_type.TEXT)
        return
    # unknown extensions are the harness's logs (.log, .console, .jsonl): shown as text, not offered as a download
    mime = mime or mimetypes.guess_type(path.name)[0] or "text/plain"
    # allure-pytest names the copy by this extension, and the report picks its viewer by it
    extension = path.suffix.lstrip(".") or (mimetypes.guess_extension(mime) or "").lstrip(".") or None
    allure.attach.file(str(path), name=name, attachment_type=mime, extension=extension)


def _listener():
    """allure-pytest's listener of this process (None without ``--alluredir``)."""
    if allure is None:
        return None
    import allure_commons
    from allure_pytest.listener import AllureListener

    for plugin in allure_commons.plugin_manager.get_plugins():
        if isinstance(plugin, AllureListener):
            return plugin
    return None


def case_result(nodeid: str):
    """The Allure test result of the running case ``nodeid`` (allure-pytest's own object), or None.

    Through allure-pytest's listener (pinned in pyproject.toml): what the public API cannot do,
    such as attaching to the test itself from a hook, or replacing a parameter.
    """
    listener = _listener()
    if listener is None:
        return None
    uuid = listener._cache.get(nodeid)
    return listener.allure_logger.get_test(uuid) if uuid else None


def attach_to_case(nodeid: str, name: str, text: str, mime: str = "text/plain", extension: str = "txt") -> None:
    """Attach ``text`` to the test result of case ``nodeid`` itself, whichever step or fixture is current."""
    listener = _listener()
    if listener is None:
        return
    uuid = listener._cache.get(nodeid)
    if not uuid:
        return
    from uuid import uuid4

    listener.allure_logger.attach_data(str(uuid4()), text, name=name, attachment_type=mime, extension=extension,
                                       parent_uuid=uuid)


def _escape_properties(text: str, *, key: bool) -> str:
    """``text`` escaped as java.util.Properties.store writes it.

    Allure 2 reads the file with Properties.load, which decodes ISO-8859-1, so everything
    outside printable ASCII becomes a \\uXXXX escape (UTF-16 units: surrogate pairs beyond
    the BMP); Allure 3's reader decodes the same escapes.
    """
    out = []
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == " ":
            # a space ends a key, and leading spaces of a value are skipped by the reader
            out.append("\\ " if key or i == 0 else " ")
        elif ch in "\t\n\r\f":
            out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f"}[ch])
        elif ch in "=:#!":
            out.append("\\" + ch)
        elif " " < ch <= "~":
            out.append(ch)
        else:
            units = ch.encode("utf-16-be")
            out.extend(f"\\u{int.from_bytes(units[j:j + 2], 'big'):04X}" for j in range(0, len(units), 2))
    return "".join(out)


def write_environment(results_dir: StrPath, props: dict[str, str]) -> Path:
    """Write ``environment.properties`` (the report's Environment table) into ``results_dir``."""
    results = Path(results_dir)
    results.mkdir(parents=True, exist_ok=True)
    lines = [f"{_escape_properties(k, key=True)}={_escape_properties(str(v), key=False)}\n" for k, v in props.items()]
    path = results / "environment.properties"
    path.write_text("".join(lines), encoding="ascii")
    return path


# Error messages the way allure-pytest records them: "module.Type: text" (pytest's exconly),
# so the text patterns allow for that prefix. Every regex spans the whole message, anchored
# and with [\s\S] for "anything": Allure 2 matches with Java's Pattern.matches (DOTALL), Allure 3
# with JavaScript's RegExp.test (a search, "." stopping at newlines), and both then agree.
_TYPE = r"(?:[\w.]+: )?"
_ERROR = r"(?:[\w.]+\.)?"  # the module path in front of an exception class name
_ANY = r"[\s\S]*"

# An infrastructure failure is an error (broken), never an assertion that failed.
_INFRASTRUCTURE = [
    ("Infrastructure: serial port", rf"{_TYPE}(?:serial port |esptool on |mpremote on |console of ){_ANY}"),
    ("Infrastructure: power switch", rf"(?:{_ANY}[Pp]ower switch|{_ERROR}PowerSwitch\w*Error:){_ANY}"),
    ("Infrastructure: OTA server", rf"(?:{_TYPE}server |{_ANY}(?:HttpServer|MqttBroker|FotaServer)){_ANY}"),
    ("Infrastructure: virtual board", rf"(?:{_TYPE}virtual board |{_ERROR}BoardStartError:){_ANY}"),
    ("Infrastructure: rig file", rf"(?:{_ERROR}RigError:|{_TYPE}rigs?/[^\n]*\.ya?ml:\d+:){_ANY}"),
]


def _by_type(name: str) -> str:
    """The harness's exception types of category ``name`` (``harness.errors``), as a message prefix."""
    from .errors import CATEGORY_BASES, failure_types

    base = next((b for b in CATEGORY_BASES if b.category == name), None)
    if base is None:
        return ""
    names = sorted({cls.__name__ for cls in failure_types(base)})
    return rf"{_ERROR}(?:{'|'.join(names)}):{_ANY}"


def categories() -> list[dict[str, Any]]:
    """The report's categories, in the order a failure is tried against them.

    An infrastructure category takes the harness's exception types of that part (by their class,
    ``harness.errors``) and, for what Python or a library raises, the words its messages start with.
    """
    # Allure 3 files a failure under the first category that matches, Allure 2 under every one:
    # each regex leaves out the messages of the categories before it, so both file it alike.
    rules: list[dict[str, Any]] = []
    earlier: list[str] = []
    infrastructure = [(name, f"{_by_type(name)}|{body}" if _by_type(name) else body) for name, body in _INFRASTRUCTURE]
    for name, body in [*infrastructure, ("Harness errors", _ANY)]:
        guard = f"(?!(?:{'|'.join(earlier)})$)" if earlier else ""
        rules.append({"name": name, "matchedStatuses": ["broken"], "messageRegex": f"^{guard}(?:{body})$"})
        earlier.append(body)
    rules.insert(-1, {"name": "Product: OTA scenario failed", "matchedStatuses": ["failed"]})
    return rules


def write_categories(results_dir: StrPath) -> Path:
    """Write ``categories.json`` (infrastructure failures apart from product failures) into ``results_dir``."""
    results = Path(results_dir)
    results.mkdir(parents=True, exist_ok=True)
    path = results / "categories.json"
    path.write_text(json.dumps(categories(), indent=2) + "\n", encoding="utf-8")
    return path
