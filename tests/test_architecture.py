"""The shape of the code: the core stays free of Telegram, Redis and RQ; every text exists in zh and en;
the sandbox (emulator, simulated village, demo) stays off to the side of the product."""

from __future__ import annotations

import ast
import string
import subprocess
import sys
from pathlib import Path

from bot.render.texts import catalogue

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("aiogram", "telegram", "redis", "rq")
PRODUCT = ("bot", "groups", "workers", "config")
SANDBOX = "bot.sandbox"
# The one place the product reaches into the sandbox: `yihu demo` loads it inside the command's body.
SANDBOX_ENTRY_POINTS = {("bot/cli/services.py", "demo", "bot.sandbox.demo")}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_groups_source_imports_no_telegram_redis_or_rq() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_modules(path) & set(FORBIDDEN))
        for path in (ROOT / "groups").rglob("*.py")
    }
    assert {path: mods for path, mods in offenders.items() if mods} == {}


def test_importing_every_groups_module_loads_none_of_them() -> None:
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in (ROOT / "groups").rglob("*.py")
        if "migrations" not in path.parts
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"


def test_workers_do_not_import_aiogram() -> None:
    code = (
        "import sys, workers.delivery, workers.process, workers.timers, workers.sweeper, bot.render\n"
        "print('aiogram' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "False"


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_zh_and_en_texts_have_the_same_keys_and_placeholders() -> None:
    zh, en = catalogue("zh"), catalogue("en")
    assert set(zh) == set(en)
    assert {k: (_fields(zh[k]), _fields(en[k])) for k in zh if _fields(zh[k]) != _fields(en[k])} == {}
    assert all(value.strip() for value in [*zh.values(), *en.values()])


# --- the sandbox stays off to the side ----------------------------------------------------------------


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _python_files(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py"))


def _imports_with_place(path: Path) -> list[tuple[str, str]]:
    """Every module ``path`` imports, at any depth (functions, ``TYPE_CHECKING`` blocks, ``import_module``
    calls with a literal name), with the function it happens in (``""`` at module level). ``from a import b``
    yields ``a.b`` when that is a module of this project, else ``a``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: list[tuple[str, str]] = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = function or node.name
        if isinstance(node, ast.Import):
            found.extend((alias.name, function) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append((submodule if _is_module(submodule) else base, function))
        elif (
            isinstance(node, ast.Call)
            and (getattr(node.func, "attr", None) == "import_module" or getattr(node.func, "id", None) == "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.args[0].value, function))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "")
    return found


def _is_sandbox(module: str) -> bool:
    return module == SANDBOX or module.startswith(SANDBOX + ".")


def test_the_product_never_imports_the_sandbox() -> None:
    """bot/ outside bot/sandbox/, groups/, workers/ and config/ reach the sandbox only through `yihu demo`."""
    found = {
        (str(path.relative_to(ROOT)), function, module)
        for path in _python_files(*PRODUCT)
        if not _is_sandbox(_module_name(path))
        for module, function in _imports_with_place(path)
        if _is_sandbox(module)
    }
    assert found == SANDBOX_ENTRY_POINTS


def test_no_emulator_file_is_over_600_lines() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in _python_files("bot/sandbox/emulator")
    }
    assert {path: lines for path, lines in sizes.items() if lines > 600} == {}


def _import_graph() -> dict[str, set[str]]:
    """Module -> the modules of this project it imports (anywhere in its source)."""
    paths = {_module_name(path): path for path in _python_files(*PRODUCT)}
    return {
        name: {module for module, _ in _imports_with_place(path) if module in paths and module != name}
        for name, path in paths.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def _sandbox_side(module: str) -> bool:
    """The CLI, the runtime and the sandbox: the modules that used to import each other in a circle."""
    return _is_sandbox(module) or module in ("bot.runtime", "bot.telegram_api") or module.startswith("bot.cli")


def test_no_import_cycle_through_the_cli_the_runtime_or_the_sandbox() -> None:
    """Imports anywhere in a module count (function level, TYPE_CHECKING); a package's __init__ importing
    its own submodules is not a cycle unless a submodule imports the package back by name. Other cycles
    of the product are not this test's business."""
    graph = _import_graph()
    assert "bot.sandbox.emulator.control" in graph and "bot.cli" in graph  # the graph did find them
    assert [sorted(c) for c in _cycles(graph) if any(_sandbox_side(m) for m in c)] == []
