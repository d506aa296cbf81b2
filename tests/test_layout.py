"""The package layout holds: every module imports, there are no import cycles, the arrows between
the folders point one way (api -> payments -> routing/failover/connectors/store -> domain, _core),
nobody reaches into another folder's private names, and statuses are only assigned by the
lifecycle functions.

The import graph is read from the source with ``ast``: every ``import``/``from ... import`` in a
module counts, including those inside functions and ``if TYPE_CHECKING:`` blocks (a cycle hidden
in a function is still a cycle in the design, and the next refactor turns it into a crash)."""

from __future__ import annotations

import ast
import io
import json
import re
import subprocess
import sys
import tokenize
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "python" / "paymux"

#: run as a program, not imported: ``python -m paymux.cli`` runs the CLI
NOT_IMPORTABLE = {"paymux.cli.__main__"}

#: the Rust extension: a compiled module, not a .py, and the one private name that is public
CORE = "paymux._core"


@dataclass(frozen=True)
class Import:
    importer: str  # the module whose source holds the statement
    target: str  # the paymux module imported (the longest one that exists)
    names: tuple[str, ...]  # for ``from target import a, b``; () for ``import target``
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


def resolve(name: str) -> str | None:
    """The longest paymux module that ``name`` is or lies in (``paymux._core`` included)."""
    known = modules()
    while name.startswith("paymux"):
        if name in known or name == CORE:
            return name
        name = name.rpartition(".")[0]
    return None


@cache
def imports() -> tuple[Import, ...]:
    found = []
    for importer, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = importer if is_package(importer) else importer.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = resolve(alias.name)
                    if target is not None:
                        found.append(Import(importer, target, (), node.lineno))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if not source.startswith("paymux"):
                    continue
                names = tuple(a.name for a in node.names)
                # ``from paymux.domain import lifecycle`` imports the module paymux.domain.lifecycle
                submodules = [
                    n for n in names if f"{source}.{n}" in modules() or f"{source}.{n}" == CORE
                ]
                for n in submodules:
                    found.append(Import(importer, f"{source}.{n}", (), node.lineno))
                rest = tuple(n for n in names if n not in submodules)
                target = resolve(source)
                if target is not None and (rest or not submodules):
                    found.append(Import(importer, target, rest, node.lineno))
    return tuple(found)


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in modules()}
    for imp in imports():
        if imp.target != imp.importer and imp.target in modules():
            edges[imp.importer].add(imp.target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One concrete cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
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
                components.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(edges) + 100))
    for v in sorted(edges):
        if v not in index:
            visit(v)

    out = []
    for component in components:
        members = set(component)
        start = component[0]
        # shortest way back to start, inside the component (breadth first)
        parents: dict[str, str] = {}
        frontier = [start]
        path: list[str] | None = None
        while frontier and path is None:
            nxt = []
            for v in frontier:
                for w in sorted(edges[v] & members):
                    if w == start:
                        path = [v]
                        while path[-1] != start:
                            path.append(parents[path[-1]])
                        path.reverse()
                        break
                    if w not in parents:
                        parents[w] = v
                        nxt.append(w)
                if path is not None:
                    break
            frontier = nxt
        assert path is not None
        out.append([*path, start] if len(component) <= len(path) else [*path, start, "..."])
    return out


def folder(module: str) -> str:
    """The concern a module belongs to: ``paymux.payments.service`` -> ``payments``; root modules
    (``paymux.config``) are their own; ``paymux`` itself is ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def describe(imp: Import) -> str:
    path = modules()[imp.importer].relative_to(ROOT)
    what = f"from {imp.target} import {', '.join(imp.names)}" if imp.names else imp.target
    return f"{path}:{imp.line}: {imp.importer} imports {what}"


# ---- (a) every module imports ----------------------------------------------------------------

IMPORT_ALL = """
import importlib, json, pkgutil, sys, traceback
import paymux
failures = {}
def onerror(name):
    failures[name] = traceback.format_exc(limit=-4)
names = [m.name for m in pkgutil.walk_packages(paymux.__path__, "paymux.", onerror=onerror)]
for name in sorted(set(names) - set(json.loads(sys.argv[1]))):
    try:
        importlib.import_module(name)
    except BaseException:
        failures[name] = traceback.format_exc(limit=-4)
print(json.dumps({"names": sorted(names), "failures": failures}))
"""


def test_every_module_imports():
    # In a fresh interpreter: what one test imported cannot hide what another module lacks, and
    # nothing imported here leaks into the other tests.
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, json.dumps(sorted(NOT_IMPORTABLE))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not result["failures"], "\n\n".join(f"{k}:\n{v}" for k, v in result["failures"].items())
    # walk_packages saw every module on disk (a folder without __init__.py would be skipped)
    on_disk = set(modules()) - {"paymux"}
    assert on_disk <= set(result["names"]), sorted(on_disk - set(result["names"]))


# ---- (b) no cycles ---------------------------------------------------------------------------


def test_the_import_graph_is_read_from_the_source():
    # a sanity check of the reader itself, on imports that are known to exist
    edges = graph()
    assert len(modules()) > 50
    assert "paymux.domain.records" in edges["paymux.domain.lifecycle"]
    assert any(imp.target == CORE for imp in imports())


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "import cycles:\n" + "\n".join("  " + " -> ".join(c) for c in found)


def test_the_cycle_finder_finds_cycles():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(edges) == [["a", "b", "c", "a"]]


# ---- (c) the arrows between folders ----------------------------------------------------------

#: importer folder -> folders it must never import
FORBIDDEN: dict[str, set[str]] = {
    "payments": {"api", "cli"},
    "store": {"api", "payments", "cli"},
    "routing": {"api", "payments", "cli"},
    "failover": {"api", "payments", "cli"},
    "connectors": {"api", "payments", "cli"},
    "api": {"cli"},
    "sandbox": {"api", "payments", "store"},
}


def arrow_violations() -> list[str]:
    bad = []
    for imp in imports():
        src, dst = folder(imp.importer), folder(imp.target)
        if src == dst:
            continue
        if src == "domain":
            # domain is the bottom: records, money, ids, outcomes, lifecycle. It does not need
            # the Rust extension today either, so it may not import even that.
            bad.append(f"domain imports nothing else of paymux: {describe(imp)}")
        elif dst == "cli" and src != "cli":
            bad.append(f"nothing but cli imports cli: {describe(imp)}")
        elif dst in FORBIDDEN.get(src, ()):
            bad.append(f"{src} never imports {dst}: {describe(imp)}")
    return bad


def test_the_arrows_point_one_way():
    bad = arrow_violations()
    assert not bad, "\n".join(bad)


# ---- (d) private names stay private ----------------------------------------------------------


def owner(module: str) -> str:
    """Who may use ``module``'s private names: its own folder (``paymux.routing`` for
    ``paymux.routing.engine``); a root module (``paymux.config``) only itself."""
    return module if folder(module) == module.rpartition(".")[2] else f"paymux.{folder(module)}"


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_violations() -> list[str]:
    bad = []
    for imp in imports():
        if imp.target == CORE or imp.importer == imp.target:
            continue
        own = owner(imp.target)
        if imp.importer == own or imp.importer.startswith(own + "."):
            continue
        for name in imp.names:
            if is_private(name) and f"{imp.target}.{name}" != CORE:
                bad.append(f"{describe(imp)} (private to {own})")
        if not imp.names and is_private(imp.target.rpartition(".")[2]):
            bad.append(f"{describe(imp)} (a private module of {own})")
    # ``import paymux.x.y as m`` / ``from paymux.x import y``, then ``m._private``
    for importer, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname and a.name in modules():
                        aliases[a.asname] = a.name
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    if f"{node.module}.{a.name}" in modules():
                        aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and is_private(node.attr)
            ):
                target = aliases[node.value.id]
                own = owner(target)
                if not (importer == own or importer.startswith(own + ".")):
                    rel = path.relative_to(ROOT)
                    bad.append(f"{rel}:{node.lineno}: {importer} uses {target}.{node.attr}")
    return bad


def test_no_module_reaches_into_another_folders_private_names():
    bad = private_violations()
    assert not bad, "\n".join(bad)


def test_owner_of_private_names():
    assert owner("paymux.routing.engine") == "paymux.routing"
    assert owner("paymux.routing") == "paymux.routing"
    assert owner("paymux.config") == "paymux.config"


# ---- (e) statuses are assigned by the lifecycle only -----------------------------------------

#: the lifecycle itself, the PSP simulator's own PSP-side state, and connectors' results (what
#: the PSP said, not a status of ours)
MAY_ASSIGN_STATUS = ("domain/lifecycle.py", "sandbox/", "connectors/")
#: (file, line) pairs whose ``.status`` is not a payment's, a refund's or an attempt's
NOT_A_LIFECYCLE_STATUS = {
    ("api/errors.py", "self.status = status"),  # the HTTP status of an error response
}
STATUS_ASSIGNMENT = re.compile(r"\.status\s*=[^=]")


def code_lines(source: str) -> list[str]:
    """``source``'s lines with string literals and comments blanked out (SQL in a string says
    ``a.status = 'declined'`` and assigns nothing)."""
    lines = source.splitlines()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return lines
    blank = {tokenize.STRING, tokenize.COMMENT}
    for tok in tokens:
        if tok.type not in blank:
            continue
        (r0, c0), (r1, c1) = tok.start, tok.end
        for r in range(r0, r1 + 1):
            line = lines[r - 1]
            a = c0 if r == r0 else 0
            b = c1 if r == r1 else len(line)
            lines[r - 1] = line[:a] + " " * (b - a) + line[b:]
    return lines


def status_assignments() -> list[str]:
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        if rel.startswith(MAY_ASSIGN_STATUS):
            continue
        source = path.read_text(encoding="utf-8")
        for n, (line, code) in enumerate(zip(source.splitlines(), code_lines(source)), 1):
            if STATUS_ASSIGNMENT.search(code) and (rel, line.strip()) not in NOT_A_LIFECYCLE_STATUS:
                bad.append(f"python/paymux/{rel}:{n}: {line.strip()}")
    return bad


def test_only_the_lifecycle_assigns_statuses():
    bad = status_assignments()
    assert not bad, (
        "assign statuses through paymux.domain.lifecycle (transition, transition_refund, "
        "settle_attempt):\n" + "\n".join(bad)
    )


@pytest.mark.parametrize(
    ("line", "hit"),
    [
        ("payment.status = PaymentStatus.FAILED", True),
        ("    refund.status='pending'", True),
        ("if payment.status == PaymentStatus.FAILED:", False),
        ("status = 402", False),
        ("attempt.status: str", False),
    ],
)
def test_the_status_grep(line, hit):
    assert bool(STATUS_ASSIGNMENT.search(line)) == hit


def test_the_status_grep_ignores_strings_and_comments():
    lines = [
        'sql = """',
        "  sum(a.status = 'declined')",
        '"""  # p.status = x',
        "q = 'a.status = 1'; payment.status = s",
    ]
    source = "\n".join(lines)
    hits = [line for line in code_lines(source) if STATUS_ASSIGNMENT.search(line)]
    assert len(hits) == 1 and hits[0].endswith("payment.status = s")
