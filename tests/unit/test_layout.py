"""The layout is a contract: these rules keep the flow of ARCHITECTURE.md true in the tree.

Imports are read with :mod:`ast` from the source (nothing is imported, no third-party tool),
every ``import`` and ``from ... import`` anywhere in a module, lazy ones inside functions
and ``TYPE_CHECKING`` blocks included: a cycle hidden in a function is still a cycle. An
import of ``a.b.c`` depends on module ``a.b.c`` (a package's ``__init__`` is its face and
counts as a module of its own). Each failure names the offending import and its line.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BROKER = ROOT / "broker"
MAX_LINES = 900

SMALL_SHARED = frozenset(
    {
        "clock",
        "errors",
        "ids",
        "pkce",
        "records",
        "request",
        "totp",
        "directory",
        "loopback",
        "tags",
        "proxies",
        "jsonread",
        "java_regex",
    }
)
"""Top-level modules of small shared values (``broker/<name>.py``)."""
ROOT_MODULES = frozenset({"app", "demo", "cli", "__main__"})
"""The composition root: wiring and the one command; nothing below imports it."""

FORBIDDEN: Mapping[str, frozenset[str]] = {
    "identity": frozenset({"sts", "web", "authz", "client", "pools"}),
    "iam": frozenset(
        {"sts", "web", "authz", "client", "pools", "identity", "issuer", "store", "observability"}
    ),
    "store": frozenset({"sts", "web", "authz", "client", "pools", "identity", "issuer", "iam"}),
    "issuer": frozenset({"sts", "web", "authz", "client", "pools"}),
    "config": frozenset(
        {
            "identity",
            "issuer",
            "sts",
            "web",
            "authz",
            "client",
            "pools",
            "iam",
            "store",
            "observability",
        }
    ),
    "observability": frozenset(
        {"config", "iam", "store", "issuer", "identity", "sts", "pools", "authz", "web", "client"}
    ),
    "throttling": frozenset(
        {"sts", "web", "authz", "client", "pools", "identity", "issuer", "iam"}
    ),
    "sts": frozenset({"authz", "web", "client"}),
    "pools": frozenset({"authz", "web", "client"}),
    "authz": frozenset({"web", "client", "pools"}),
}
"""Package -> packages it must not import (ARCHITECTURE.md's layers, issue 11's rules)."""

CLIENT_MAY_IMPORT = frozenset({"client", "clock", "errors", "ids", "loopback", "pkce", "totp"})
"""``broker/client/`` runs on a user's laptop: besides itself, only these small values."""


@dataclass(frozen=True)
class Import:
    source: str
    """The importing module, dotted (``broker.sts.engine``)."""
    target: str
    """The imported broker module, dotted."""
    line: int

    def __str__(self) -> str:
        path = _modules()[self.source].relative_to(ROOT)
        return f"{path}:{self.line}: {self.source} imports {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


_CACHE: dict[str, object] = {}


def _modules() -> dict[str, Path]:
    """Every module of broker/, by dotted name."""
    if "modules" not in _CACHE:
        _CACHE["modules"] = {_module_name(p): p for p in sorted(BROKER.rglob("*.py"))}
    modules = _CACHE["modules"]
    assert isinstance(modules, dict)
    return modules


def _resolve(name: str) -> str | None:
    """The broker module ``name`` is or lives in (``broker.config.load_config`` ->
    ``broker.config``); None for anything outside broker/."""
    modules = _modules()
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> Iterator[Import]:
    """Every broker module ``module`` imports, wherever in the file the import stands."""
    path = _modules()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            # ``from broker.identity import caller`` imports a module; ``... import Caller``
            # imports a name of the package face.
            names = [f"{prefix}.{alias.name}" for alias in node.names] or [prefix]
        else:
            continue
        for name in names:
            target = _resolve(name)
            if target is not None and target != module:
                yield Import(module, target, node.lineno)


def _all_imports() -> list[Import]:
    if "imports" not in _CACHE:
        # One entry per (module, target, line): ``from x import A, B`` is one import.
        _CACHE["imports"] = list(dict.fromkeys(i for m in _modules() for i in imports_of(m)))
    found = _CACHE["imports"]
    assert isinstance(found, list)
    return found


def _room(module: str) -> str:
    """``broker.sts.engine`` -> ``sts``; ``broker.clock`` -> ``clock``; ``broker`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def find_cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return cycles


def layer_violations(imports: list[Import]) -> list[str]:
    """Imports that break :data:`FORBIDDEN`, the client rule, or reach the composition root."""
    found = []
    for imp in imports:
        source, target = _room(imp.source), _room(imp.target)
        if target in FORBIDDEN.get(source, frozenset()):
            found.append(f"{imp} ({source}/ must not import {target}/)")
        if source == "client" and target not in CLIENT_MAY_IMPORT:
            found.append(f"{imp} (client/ imports only {sorted(CLIENT_MAY_IMPORT)})")
        if target in ROOT_MODULES and source not in ROOT_MODULES:
            found.append(f"{imp} (the composition root is imported by nothing below it)")
        if source in SMALL_SHARED - {"directory"} and target not in SMALL_SHARED:
            found.append(f"{imp} (small shared values import only each other)")
    return found


def _edges(imports: list[Import]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for imp in imports:
        edges.setdefault(imp.source, set()).add(imp.target)
    return edges


def test_no_import_cycle() -> None:
    imports = _all_imports()
    cycles = find_cycles(_edges(imports))
    lines = []
    for cycle in cycles:
        members = set(cycle)
        lines.append("cycle: " + " <-> ".join(cycle))
        lines.extend(f"  {i}" for i in imports if i.source in members and i.target in members)
    assert not cycles, "\n".join(lines)


def test_layers() -> None:
    violations = layer_violations(_all_imports())
    assert not violations, "\n".join(violations)


def test_no_module_over_the_limit() -> None:
    too_long = []
    for module, path in _modules().items():
        count = len(path.read_text(encoding="utf-8").splitlines())
        if count > MAX_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {count} lines ({module})")
    assert not too_long, f"modules over {MAX_LINES} lines:\n" + "\n".join(too_long)


def test_every_room_is_known() -> None:
    """A new top-level module or package must be placed in a layer here, deliberately."""
    known = SMALL_SHARED | ROOT_MODULES | set(FORBIDDEN) | {"client", "web", ""}
    unknown = sorted({_room(m) for m in _modules()} - known)
    assert not unknown, f"place these in tests/unit/test_layout.py's layers: {unknown}"


def test_credential_process_starts_without_the_server_side() -> None:
    """``credential-process`` runs on every AWS CLI call: it must not load pydantic,
    cryptography or the server's packages (the start-up time is in docs/cli.md)."""
    code = (
        "import sys\n"
        "from broker import cli\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'cryptography', 'starlette', 'httpx', 'lxml', 'yaml') "
        "or m.split('.')[:2] in (['broker', n] for n in "
        "('config', 'identity', 'iam', 'sts', 'store', 'web', 'authz', 'issuer')))\n"
        "print(' '.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "", f"importing broker.cli loads: {out.stdout.strip()}"


# --- the checker itself fails on a broken rule (it is the contract, so it is tested too) ---


def _fake(imports: list[tuple[str, str]]) -> list[Import]:
    return [Import(source, target, 1) for source, target in imports]


def test_checker_finds_a_cycle() -> None:
    edges = _edges(
        _fake([("broker.a", "broker.b"), ("broker.b", "broker.c"), ("broker.c", "broker.a")])
    )
    assert find_cycles(edges) == [["broker.a", "broker.b", "broker.c"]]
    assert find_cycles(_edges(_fake([("broker.a", "broker.b")]))) == []


@pytest.mark.parametrize(
    ("source", "target", "rule"),
    [
        ("broker.identity.caller", "broker.sts.engine", "identity/ must not import sts/"),
        ("broker.iam.policy", "broker.identity.caller", "iam/ must not import identity/"),
        ("broker.config.schema", "broker.identity.saml", "config/ must not import identity/"),
        ("broker.issuer.tokens", "broker.sts.engine", "issuer/ must not import sts/"),
        ("broker.sts.engine", "broker.authz.service", "sts/ must not import authz/"),
        ("broker.client.login", "broker.config", "client/ imports only"),
        ("broker.web.people", "broker.app", "the composition root is imported by nothing"),
        ("broker.clock", "broker.config", "small shared values import only each other"),
        (
            "broker.observability.metrics",
            "broker.web.admin",
            "observability/ must not import web/",
        ),
        ("broker.observability.audit", "broker.config", "observability/ must not import config/"),
    ],
)
def test_checker_names_each_broken_rule(source: str, target: str, rule: str) -> None:
    found = [
        v
        for v in layer_violations(_fake([(source, target)]))
        if rule in v and f"{source} imports {target}" in v
    ]
    assert found, layer_violations(_fake([(source, target)]))


def test_checker_reads_lazy_and_relative_imports(tmp_path: Path) -> None:
    """Imports inside functions and TYPE_CHECKING blocks count (they are what hid a circle)."""
    source = ROOT / "broker" / "sts" / "engine.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    top_level = {
        n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.module is not None
    }
    every = {i.target for i in imports_of("broker.sts.engine")}
    assert {"broker.clock", "broker.directory"} <= every
    assert every >= {_resolve(m) for m in top_level if m.startswith("broker")} - {None}
