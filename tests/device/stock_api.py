"""Static check of MicroPython device code against the public API of stock firmware.

The table (``harness/emu/mpy_api/v1.27.0.json``, the specification's, word for word) lists, per
port, the importable modules (built-in, frozen, and the ``u``-aliases of the ``extensible``
ones), every name of each module, the members of its classes and the builtins. For one source
file and one port, :func:`check` reports, with Python's ``ast`` and without running anything:

* an ``import`` of a module the port does not have (own modules aside);
* ``module.name`` and ``from module import name`` for a name the module lacks;
* one level of class members: ``Class.member`` for a class reached through a module
  (``esp32.Partition.find``, ``Partition.RUNNING``), and ``var.member`` / ``self.attr.member``
  where the variable or attribute only ever holds an instance of one stock class
  (``s = socket.socket()``, ``self.h = hashlib.sha256()``, ``ctx = ssl.SSLContext(...)``), or a
  partition that ``Partition.find`` / ``get_next_update`` returned;
* a builtin name (``compile``, ``NotImplemented``, ...) that the port's ``builtins`` lacks.

What a port may lack is probed, never read: ``getattr(module, "name", default)`` and
``hasattr(module, "name")`` are not reported, and neither is an ``import`` inside a ``try``
whose handler catches ImportError. Code a probe keeps from running on a port is not checked
for that port: the body of ``if hasattr(M, "X"):``, and the rest of a block after
``if not hasattr(M, "X"): raise ...`` (or ``return``). A read guarded by ``except
AttributeError`` *is* reported: on the port without the name it is dead code at best.
The frozen ``ssl.SSLContext`` forwards ``load_verify_locations`` and ``load_cert_chain`` to
``tls.SSLContext``; those are checked against ``tls`` too (the ESP8266's has no
``load_verify_locations``).

Run as a script to print the findings for the agent: ``python tests/device/stock_api.py``.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The project's copy of the specification's table (tests/emu/test_mpy_parity.py holds it to the spec).
TABLE = ROOT / "harness" / "emu" / "mpy_api" / "v1.27.0.json"
AGENT = ROOT / "device_fw" / "micropython"
PORTS = ("esp32", "esp8266")

# Methods whose result is known: (module, class, method) -> ("inst" | "list", module, class).
RETURNS = {
    ("esp32", "Partition", "find"): ("list", "esp32", "Partition"),
    ("esp32", "Partition", "get_next_update"): ("inst", "esp32", "Partition"),
}
# Methods of the frozen ssl.SSLContext (micropython-lib's ssl.py) that only forward to the
# built-in tls.SSLContext: they work only where that has them (the ESP8266's axtls has no
# load_verify_locations, so there the wrapper's raises AttributeError).
DELEGATES = {("ssl", "SSLContext"): ("tls", "SSLContext", {"load_cert_chain", "load_verify_locations"})}
_IMPORT_CATCHERS = {"ImportError", "Exception", "BaseException"}


class TableMissing(FileNotFoundError):
    pass


def load_table(path: Path = TABLE) -> dict:
    if not path.is_file():
        raise TableMissing(
            f"the MicroPython API table is missing: {path} (harness/emu/mpy_api/v1.27.0.json in the repository)")
    return json.loads(path.read_text())


@dataclass
class Port:
    name: str
    modules: dict  # module -> {"names": {...}}
    importable: set[str]
    builtins: set[str]

    @property
    def text_methods(self) -> set[str]:
        b = self.modules["builtins"]["names"]
        return set().union(*(set(b[t].get("members") or ()) for t in ("str", "bytes", "bytearray")))

    @classmethod
    def from_table(cls, table: dict, name: str) -> Port:
        p = table["ports"][name]
        importable = set(p["builtin_modules"]) | set(p["frozen_modules"]) | {"u" + m for m in p["extensible"]}
        return cls(name, p["modules"], importable, set(p["modules"]["builtins"]["names"]))

    def real_module(self, name: str) -> str:
        # "uos" -> "os" where the port makes it an alias.
        if name not in self.modules and name.startswith("u") and name[1:] in self.modules:
            return name[1:]
        return name

    def names(self, module: str) -> dict | None:
        m = self.modules.get(module)
        return None if m is None else m.get("names", {})

    def members(self, module: str, cls: str) -> set[str] | None:
        entry = (self.names(module) or {}).get(cls)
        if not entry or entry.get("kind") != "class":
            return None
        return set(entry.get("members") or ())


# Every str/bytes/bytearray method any port of the table has (what one port lacks of these is checked).
_TEXT_METHODS = {"center", "count", "decode", "encode", "endswith", "find", "format", "index", "isalpha", "isdigit",
                 "islower", "isspace", "isupper", "join", "lower", "lstrip", "partition", "replace", "rfind",
                 "rindex", "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "upper",
                 "append", "extend", "fromhex", "hex"}


# -- types the inference knows ------------------------------------------------------------------
@dataclass(frozen=True)
class Mod:
    module: str


@dataclass(frozen=True)
class Cls:
    module: str
    cls: str


@dataclass(frozen=True)
class Inst:
    module: str
    cls: str


@dataclass(frozen=True)
class ListOf:
    module: str
    cls: str


@dataclass(frozen=True)
class TupleOf:
    items: tuple


UNKNOWN = object()


@dataclass
class Scope:
    node: ast.AST | None
    parent: Scope | None
    params: set[str] = field(default_factory=set)
    assigned: dict[str, set] = field(default_factory=dict)

    def add(self, name: str, t) -> None:
        self.assigned.setdefault(name, set()).add(t)

    def reset(self) -> None:
        self.assigned = {name: {UNKNOWN} for name in self.params}


def own_modules(agent: Path = AGENT) -> set[str]:
    # The agent's own modules, and the application it imports from the active slot.
    return {p.stem for p in (agent / "lib").glob("*.py")} | {"app"}


class _Checker:
    def __init__(self, tree: ast.Module, port: Port, own: set[str], filename: str):
        self.tree, self.port, self.own, self.filename = tree, port, own, filename
        self.problems: list[str] = []
        self.parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
        self.stored = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)} \
            | {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
        self.bound: dict[str, object] = {}  # file-wide: names bound by imports
        self.defined: set[str] = set(self.stored)
        self.scopes: dict[ast.AST, Scope] = {}
        # module-level functions, whose results the inference follows (``part, _ = running()``)
        self.functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        self.computing: set[ast.AST] = set()
        self.unreachable: set[ast.AST] = set()
        self.class_attrs: dict[ast.AST, Scope] = {}

    # -- probes: code a port never runs ---------------------------------------------------------------
    def _probe(self, test: ast.AST) -> tuple[bool, bool] | None:
        # ``hasattr(M, "X")`` -> (True, lacks); ``not hasattr(M, "X")`` -> (False, lacks), for a stock module M.
        positive = True
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            positive, test = False, test.operand
        if not (isinstance(test, ast.Call) and isinstance(test.func, ast.Name) and test.func.id == "hasattr"
                and len(test.args) == 2 and isinstance(test.args[1], ast.Constant)):
            return None
        base = self.type_of(test.args[0], test)
        names = self.port.names(base.module) if isinstance(base, Mod) else None
        if names is None:
            return None
        return positive, test.args[1].value not in names

    def _skip(self, stmts) -> None:
        for stmt in stmts:
            self.unreachable.update(ast.walk(stmt))

    def find_unreachable(self) -> None:
        # if hasattr(M, "X"): <body>          the body never runs where M lacks X
        # if not hasattr(M, "X"): raise/return  neither does the rest of the block
        for node in ast.walk(self.tree):
            for attr in ("body", "orelse", "finalbody"):
                block = getattr(node, attr, None)
                if not isinstance(block, list):
                    continue
                for i, stmt in enumerate(block):
                    if not isinstance(stmt, ast.If):
                        continue
                    probe = self._probe(stmt.test)
                    if probe is None or not probe[1]:
                        continue
                    if probe[0]:
                        self._skip(stmt.body)
                    else:
                        self._skip(stmt.orelse)
                        if stmt.body and isinstance(stmt.body[-1], (ast.Raise, ast.Return)):
                            self._skip(block[i + 1:])

    def report(self, node: ast.AST, msg: str) -> None:
        if node in self.unreachable:
            return
        self.problems.append(f"{self.filename}:{getattr(node, 'lineno', 0)}: {msg} (stock {self.port.name})")

    # -- imports ------------------------------------------------------------------------------
    def _guarded(self, node: ast.AST) -> bool:
        child, parent = node, self.parents.get(node)
        while parent is not None:
            if isinstance(parent, ast.Try) and child in parent.body:
                for h in parent.handlers:
                    types = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]
                    if h.type is None or any(isinstance(t, ast.Name) and t.id in _IMPORT_CATCHERS for t in types):
                        return True
            child, parent = parent, self.parents.get(parent)
        return False

    def _bind(self, name: str, value) -> None:
        self.defined.add(name)
        if name not in self.stored:  # a name also assigned elsewhere is not reliably the module
            self.bound[name] = value

    def imports(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    top = a.name.split(".")[0]
                    local = a.asname or top
                    if top in self.own:
                        self.defined.add(local)
                        continue
                    if top not in self.port.importable:
                        self.defined.add(local)
                        if not self._guarded(node):
                            self.report(node, f"imports {top!r}, which is no module of the port")
                        continue
                    self._bind(local, Mod(self.port.real_module(top)))
            elif isinstance(node, ast.ImportFrom) and node.module:
                top = node.module.split(".")[0]
                for a in node.names:
                    self.defined.add(a.asname or a.name)
                if top in self.own or node.level:
                    continue
                if top not in self.port.importable:
                    if not self._guarded(node):
                        self.report(node, f"imports from {top!r}, which is no module of the port")
                    continue
                real = self.port.real_module(top)
                names = self.port.names(real)
                if names is None:
                    continue  # a frozen module the table does not describe
                for a in node.names:
                    if a.name == "*":
                        continue
                    entry = names.get(a.name)
                    if entry is None:
                        if not self._guarded(node):
                            self.report(node, f"'from {top} import {a.name}': {real} has no {a.name!r}")
                        continue
                    if entry.get("kind") == "class":
                        self._bind(a.asname or a.name, Cls(real, a.name))

    # -- scopes and the instance types ------------------------------------------------------------
    def _scope_of(self, node: ast.AST) -> Scope:
        parent = self.parents.get(node)
        while parent is not None and not isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            parent = self.parents.get(parent)
        return self.scopes[parent] if parent is not None else self.scopes[self.tree]

    def _class_of_method(self, node: ast.AST) -> ast.ClassDef | None:
        # The class whose method (directly) contains node, if node's function is a method.
        parent = self.parents.get(node)
        while parent is not None and not isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)):
            parent = self.parents.get(parent)
        if parent is None:
            return None
        owner = self.parents.get(parent)
        return owner if isinstance(owner, ast.ClassDef) else None

    def build_scopes(self) -> None:
        self.scopes[self.tree] = Scope(self.tree, None)
        stack = [(self.tree, self.scopes[self.tree])]
        while stack:
            node, scope = stack.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                    inner = self.scopes[child] = Scope(child, scope)
                    for a in ast.walk(child.args):
                        if isinstance(a, ast.arg):
                            inner.params.add(a.arg)
                            self.defined.add(a.arg)
                    if not isinstance(child, ast.Lambda):
                        self.defined.add(child.name)
                    stack.append((child, inner))
                else:
                    if isinstance(child, ast.ClassDef):
                        self.defined.add(child.name)
                        self.class_attrs[child] = Scope(child, None)
                    stack.append((child, scope))

    def _targets(self, target: ast.AST, value_type, node: ast.AST) -> None:
        if isinstance(target, ast.Name):
            self._scope_of(node).add(target.id, value_type)
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
            cls = self._class_of_method(node)
            if cls is not None:
                self.class_attrs[cls].add(target.attr, value_type)
        elif isinstance(target, (ast.Tuple, ast.List)):
            items = value_type.items if isinstance(value_type, TupleOf) else ()
            plain = len(items) == len(target.elts) and not any(isinstance(t, ast.Starred) for t in target.elts)
            for i, t in enumerate(target.elts):
                self._targets(t, items[i] if plain else UNKNOWN, node)
        elif isinstance(target, ast.Starred):
            self._targets(target.value, UNKNOWN, node)

    def collect_assignments(self) -> None:
        for scope in list(self.scopes.values()) + list(self.class_attrs.values()):
            scope.reset()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign):
                if isinstance(node.value, ast.Constant) and node.value.value is None:
                    continue  # "not yet / no longer": does not change what the name holds otherwise
                t = self.type_of(node.value, node)
                for target in node.targets:
                    self._targets(target, t, node)
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                self._targets(node.target, UNKNOWN, node)
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                it = self.type_of(node.iter, node)
                element = Inst(it.module, it.cls) if isinstance(it, ListOf) else UNKNOWN
                self._targets(node.target, element, node)
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                self._targets(node.optional_vars, UNKNOWN, node)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                self._scope_of(node).add(node.name, UNKNOWN)
                self.defined.add(node.name)
            elif isinstance(node, ast.NamedExpr):
                self._targets(node.target, UNKNOWN, node)

    def _lookup(self, name: str, node: ast.AST):
        scope = self._scope_of(node)
        while scope is not None:
            if name in scope.assigned:
                types = scope.assigned[name]
                return next(iter(types)) if len(types) == 1 else UNKNOWN
            scope = scope.parent
        return self.bound.get(name, UNKNOWN)

    def type_of(self, expr: ast.AST, at: ast.AST):
        if isinstance(expr, ast.Name):
            return self._lookup(expr.id, at)
        if isinstance(expr, ast.Attribute):
            if isinstance(expr.value, ast.Name) and expr.value.id == "self":
                cls = self._class_of_method(at)
                if cls is not None:
                    types = self.class_attrs[cls].assigned.get(expr.attr, {UNKNOWN})
                    return next(iter(types)) if len(types) == 1 else UNKNOWN
                return UNKNOWN
            base = self.type_of(expr.value, at)
            if isinstance(base, Mod):
                entry = (self.port.names(base.module) or {}).get(expr.attr)
                if entry and entry.get("kind") == "class":
                    return Cls(base.module, expr.attr)
            return UNKNOWN
        if isinstance(expr, ast.Tuple):
            return TupleOf(tuple(self.type_of(e, at) for e in expr.elts))
        if isinstance(expr, ast.Call):
            if isinstance(expr.func, ast.Name) and expr.func.id in self.functions and expr.func.id not in self.stored:
                return self._returns(self.functions[expr.func.id])
            f = self.type_of(expr.func, at)
            if isinstance(f, Cls):
                return Inst(f.module, f.cls)
            if isinstance(expr.func, ast.Attribute):
                owner = self.type_of(expr.func.value, at)
                if isinstance(owner, (Cls, Inst)):
                    known = RETURNS.get((owner.module, owner.cls, expr.func.attr))
                    if known is not None:
                        kind, module, cls = known
                        return ListOf(module, cls) if kind == "list" else Inst(module, cls)
            return UNKNOWN
        if isinstance(expr, ast.Subscript):
            base = self.type_of(expr.value, at)
            if isinstance(base, ListOf) and not isinstance(expr.slice, ast.Slice):
                return Inst(base.module, base.cls)
        return UNKNOWN

    def _returns(self, fn: ast.FunctionDef):
        # What a module-level function of this file returns, if every return agrees.
        if fn in self.computing:
            return UNKNOWN
        self.computing.add(fn)
        try:
            found = set()
            for node in ast.walk(fn):
                if isinstance(node, ast.Return) and self._scope_of(node).node is fn:
                    found.add(self.type_of(node.value, node) if node.value is not None else UNKNOWN)
            return next(iter(found)) if len(found) == 1 else UNKNOWN
        finally:
            self.computing.discard(fn)

    # -- the checks -------------------------------------------------------------------------------
    def _check_attr(self, node: ast.AST, base, attr: str) -> None:
        if isinstance(base, Mod):
            names = self.port.names(base.module)
            if names is not None and attr not in names:
                self.report(node, f"{base.module}.{attr} does not exist")
        elif isinstance(base, (Cls, Inst)):
            members = self.port.members(base.module, base.cls)
            if members is not None and attr not in members:
                self.report(node, f"{base.module}.{base.cls} has no member {attr!r}")
                return
            target = DELEGATES.get((base.module, base.cls))
            if target is not None and attr in target[2]:
                inner = self.port.members(target[0], target[1])
                if inner is not None and attr not in inner:
                    self.report(node, f"{base.module}.{base.cls}.{attr} forwards to {target[0]}.{target[1]}, "
                                      f"which has no {attr!r}")

    def check_names(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Attribute):
                self._check_attr(node, self.type_of(node.value, node), node.attr)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                    and len(node.args) == 2 and isinstance(node.args[1], ast.Constant) \
                    and isinstance(node.args[1].value, str):
                # getattr(x, "name") without a default reads the name like x.name does
                self._check_attr(node, self.type_of(node.args[0], node), node.args[1].value)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                if node.id not in self.defined and node.id not in self.port.builtins:
                    self.report(node, f"{node.id!r} is neither defined here nor a builtin")

    def run(self) -> list[str]:
        self.build_scopes()
        self.imports()
        for _ in range(3):  # types flow through assignments: a few rounds reach the fixed point
            self.collect_assignments()
        self.find_unreachable()
        self.check_names()
        self.check_text_methods()
        return self.problems

    def check_text_methods(self) -> None:
        # str/bytes/bytearray methods some port's build leaves out (the ESP8266 has no partition,
        # rpartition, splitlines or center): a call of one on anything not a stock module or
        # class is taken for a text method; the port's core types decide.
        missing = _TEXT_METHODS - self.port.text_methods
        for node in ast.walk(self.tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in missing
                    and node not in self.unreachable):
                base = self.type_of(node.func.value, node)
                if isinstance(base, (Mod, Cls)):
                    continue
                self.problems.append(f"{self.filename}:{node.lineno}: .{node.func.attr}() of str/bytes is not in "
                                     f"MicroPython v1.27.0 on {self.port.name}")


def check(source: str, port: Port, own: set[str] | None = None, filename: str = "<source>") -> list[str]:
    """Problems of ``source`` on ``port`` as "file:line: message" lines (empty: it uses only stock names)."""
    return _Checker(ast.parse(source), port, own_modules() if own is None else own, filename).run()


# Where each agent file runs. boot.py, main.py and everything they import at load time run on
# both chips (README: files updates on the ESP32 and the ESP8266); otafw is imported only when
# otaagent.chip() == "esp32" (firmware OTA needs esp32.Partition), and fota is the QuecPython
# API on the ESP32's firmware slots (it imports otafw).
ESP32_ONLY = {"lib/otafw.py", "lib/fota.py"}


def agent_files(agent: Path = AGENT) -> dict[str, tuple[str, ...]]:
    """Every agent file (relative path) with the ports it runs on."""
    return {str(p.relative_to(agent)): ("esp32",) if str(p.relative_to(agent)) in ESP32_ONLY else PORTS
            for p in sorted(agent.rglob("*.py"))}


def main() -> int:
    table = load_table()
    ports = {name: Port.from_table(table, name) for name in PORTS}
    problems = []
    for rel, runs_on in agent_files().items():
        for port in runs_on:
            problems += check((AGENT / rel).read_text(), ports[port], filename=rel)
    print("\n".join(problems) or "the agent uses only names stock MicroPython v1.27.0 has")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
