"""The rules between rooms (docs/architecture.md), read from the source's own imports.

* ``sync`` and ``connections`` know trackers only through ``trackers`` (never an adapter);
* an adapter imports ``trackers`` and no other app of the project;
* ``trackers`` imports no other app of the project;
* no app imports the project package ``exalate_console`` (it wires the apps, not the reverse);
* no file of product code is much over 500 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("trackers", "connections", "sync", "servicenow_adapter", "jira_adapter")
ADAPTERS = ("servicenow_adapter", "jira_adapter")
PROJECT = ("exalate_console", *APPS)
MAX_LINES = 520


def _sources(app: str):
    yield from sorted((ROOT / app).rglob("*.py"))


def _imported_roots(path: Path) -> set[str]:
    """Top-level package names this file imports (absolute imports; relative ones stay inside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def _violations(app: str, allowed: set[str]) -> list[str]:
    found = []
    for path in _sources(app):
        for root in sorted(_imported_roots(path) & set(PROJECT)):
            if root != app and root not in allowed:
                found.append(f"{path.relative_to(ROOT)} imports {root}")
    return found


@pytest.mark.parametrize("app", ["sync", "connections"])
def test_the_engine_reaches_trackers_only_through_the_plug(app):
    assert _violations(app, allowed={"trackers", "connections", "sync"}) == []


@pytest.mark.parametrize("app", ADAPTERS)
def test_an_adapter_imports_only_the_tracker_plug(app):
    if not (ROOT / app).is_dir():
        pytest.skip(f"{app} is not part of this tree")
    assert _violations(app, allowed={"trackers"}) == []


def test_the_tracker_plug_imports_no_other_app():
    assert _violations("trackers", allowed=set()) == []


@pytest.mark.parametrize("app", APPS)
def test_no_app_imports_the_project_package(app):
    if not (ROOT / app).is_dir():
        pytest.skip(f"{app} is not part of this tree")
    offenders = [
        str(path.relative_to(ROOT))
        for path in _sources(app)
        if "exalate_console" in _imported_roots(path)
    ]
    assert offenders == []


def test_connections_does_not_import_the_sync_engine_at_module_level():
    """connections is below sync: sync imports connections, never the other way at import time."""
    offenders = []
    for path in _sources("connections"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only; a function may look sync up lazily
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module.split(".")[0] == "sync":
                    offenders.append(str(path.relative_to(ROOT)))
            elif isinstance(node, ast.Import):
                if any(alias.name.split(".")[0] == "sync" for alias in node.names):
                    offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_no_product_file_is_too_long_to_read_in_one_sitting():
    long = []
    for package in PROJECT:
        for path in _sources(package) if (ROOT / package).is_dir() else ():
            if "migrations" in path.parts:
                continue
            lines = path.read_text(encoding="utf-8").count("\n")
            if lines > MAX_LINES:
                long.append(f"{path.relative_to(ROOT)} ({lines} lines)")
    assert long == []
