"""The layering the project promises: the server never loads Textual, the client's API layer
never loads Textual, and only that layer speaks HTTP."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def loaded_after_importing_all(package: str) -> set[str]:
    """Top-level packages in sys.modules after importing every module of `package`."""
    script = (
        "import importlib, pkgutil, sys\n"
        f"root = importlib.import_module({package!r})\n"
        "for info in pkgutil.walk_packages(root.__path__, root.__name__ + '.'):\n"
        "    if not info.name.endswith('__main__'):\n"
        "        importlib.import_module(info.name)\n"
        "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(done.stdout.split())


def test_the_server_never_loads_textual() -> None:
    loaded = loaded_after_importing_all("tfa_server")
    assert "textual" not in loaded
    assert "tfa_tui" not in loaded


def test_the_protocol_loads_neither_side_nor_textual() -> None:
    """tfa_protocol (issue 12) is what the server and the client share: it imports neither,
    and both import it."""
    loaded = loaded_after_importing_all("tfa_protocol")
    assert "msgspec" in loaded  # the check sees imports at all
    assert not {"textual", "tfa_server", "tfa_tui"} & loaded
    assert "tfa_protocol" in loaded_after_importing_all("tfa_server")
    assert "tfa_protocol" in loaded_after_importing_all("tfa_tui.api")


def test_wire_shapes_are_written_only_in_the_protocol() -> None:
    """Issue 12: one description of the API. A Struct defined elsewhere in src/ would be a
    second copy of a shape, free to drift from the document."""
    elsewhere = []
    for path in SRC.rglob("*.py"):
        if path.is_relative_to(SRC / "tfa_protocol"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                ast.unparse(base).endswith("Struct") for base in node.bases
            ):
                elsewhere.append(f"{path.relative_to(SRC)}:{node.name}")
    assert not elsewhere


def test_the_api_layer_never_loads_textual() -> None:
    loaded = loaded_after_importing_all("tfa_tui.api")
    assert "httpx" in loaded  # the check sees imports at all
    assert "textual" not in loaded


def imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_api_layer_speaks_http() -> None:
    client = SRC / "tfa_tui"
    speakers = {
        path.relative_to(client).as_posix()
        for path in client.rglob("*.py")
        if imported_names(path) & {"httpx", "h11", "http", "urllib", "socket"}
    }
    assert speakers
    assert all(path.startswith("api/") for path in speakers), speakers


def test_workers_given_arguments_have_a_fixed_description() -> None:
    """Textual describes a worker by default as its call with the arguments' repr, and that
    text shows in worker errors and the devtools log: a sign-in worker would carry the password.
    Every worker that takes arguments names itself instead."""
    undescribed = []
    for path in (SRC / "tfa_tui").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
                continue
            arguments = node.args.args[1:] + node.args.kwonlyargs
            for decorator in node.decorator_list:
                if not (isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "work"):
                    continue
                named = {keyword.arg for keyword in decorator.keywords}
                if arguments and "description" not in named:
                    undescribed.append(f"{path.relative_to(SRC)}:{node.name}")
    assert not undescribed
