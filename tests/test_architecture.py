"""The package's layers, checked on its source with ``ast``: imports point down only, no import circle, no
module or function grown too large, and the CLI's ``--help`` imports no torch."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "detector"
# what each layer may import (besides itself); the top-level modules (__init__, __main__) may import the CLI
ALLOWED = {
    "core": set(),
    "data": {"core"},
    "models": {"core"},
    "evaluation": {"core", "data", "models"},
    "engine": {"core", "data", "models", "evaluation"},
    "api": {"core", "data", "models", "evaluation", "engine"},
    "app": {"core", "api"},  # and, of the core, only what SURFACE_CORE names
    "cli": {"core", "api", "app"},  # the app: for `detector demo`
    "": {"cli", "api"},
}
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 80
# the CLI and the app reach the library through its public API (detector.api); of the core they use only the
# error root and the library's voice (progress and logging). An import around the API must be named here with
# its reason: (module, imported module) -> why. At most MAX_AROUND_API of them.
SURFACE_CORE = {"detector.core.errors", "detector.core.progress"}
AROUND_API: dict[tuple[str, str], str] = {}
MAX_AROUND_API = 5


def module_name(path: Path) -> str:
    parts = ["detector", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else ""


def imports(path: Path) -> set[str]:
    """Every package module ``path`` imports, at the top or inside functions: ``from detector.a import b``
    names ``detector.a.b`` when that is a module, else ``detector.a``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("detector")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("detector"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


GRAPH = {m: imports(p) - {m} for m, p in MODULES.items()}


def test_the_layout_exists():
    for folder in ("core", "models", "data", "engine", "evaluation", "api", "cli", "app"):
        assert (PACKAGE / folder / "__init__.py").is_file()
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"], f"modules outside the layers: {loose}"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Edges from a layer to one it may not import. ``detector`` itself (only ``__version__``) is everyone's."""
    return [f"{m} ({layer(m) or 'top'}) imports {t} ({layer(t) or 'top'})" for m, targets in graph.items()
            for t in targets if t != "detector" and m != "detector" and layer(t) != layer(m)
            and layer(t) not in ALLOWED[layer(m)]]


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> list[str] | None:
        state[m] = 1
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                return [*path, m, t]
            if t not in state and (found := visit(t, [*path, m])):
                return found
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (path := visit(m, [])):
            return path[path.index(path[-1]):]
    return None


def top_level_imports(path: Path) -> set[str]:
    """The package modules ``path`` imports at its top level (not inside functions)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("detector")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("detector"):
            found.add(node.module)
    return found


def test_imports_point_down_only():
    # the package's __init__ is imported by every layer: it imports nothing when loaded, and only the API (for
    # ``from detector import Detector``) when that name is first asked for
    assert top_level_imports(MODULES["detector"]) == set()
    assert GRAPH["detector"] <= {"detector.api"}
    assert top_level_imports(MODULES["detector.api"]) <= {"detector.core.errors"}  # the rest on first use
    assert not GRAPH["detector.core"] - {m for m in MODULES if m.startswith("detector.core.")}
    upward = upward_imports(GRAPH)
    assert not upward, "\n".join(upward)


def around_api(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """The imports of the CLI and the app that go around the API: to a layer other than their own, the API, the
    app (for the CLI) and the core's :data:`SURFACE_CORE`."""
    found = []
    for m, targets in graph.items():
        if layer(m) not in ("cli", "app"):
            continue
        for t in targets:
            if t == "detector" or layer(t) == layer(m) or layer(t) == "api" or t in SURFACE_CORE:
                continue
            if layer(m) == "cli" and layer(t) == "app":
                continue
            found.append((m, t))
    return sorted(found)


def test_the_cli_and_the_app_go_through_the_api():
    assert len(AROUND_API) <= MAX_AROUND_API, f"at most {MAX_AROUND_API} imports around the API"
    unlisted = [f"{m} imports {t}" for m, t in around_api(GRAPH) if (m, t) not in AROUND_API]
    assert not unlisted, "imports around detector.api (go through it, or name them in AROUND_API):\n" + \
        "\n".join(unlisted)
    stale = [k for k in AROUND_API if k not in around_api(GRAPH)]
    assert not stale, f"AROUND_API names imports that are gone: {stale}"
    # the rule itself, on made-up graphs
    assert around_api({"detector.cli.x": {"detector.engine.loop", "detector.api.settings", "detector.app.ui"},
                       "detector.app.y": {"detector.core.boxes", "detector.core.errors", "detector.cli.z"}}) == [
        ("detector.app.y", "detector.cli.z"), ("detector.app.y", "detector.core.boxes"),
        ("detector.cli.x", "detector.engine.loop")]


def test_no_import_circle():
    circle = find_circle(GRAPH)
    assert circle is None, "import circle: " + " -> ".join(circle)


def test_the_checks_catch_what_they_should(tmp_path):
    """The circle finder and the layer rule on made-up graphs; imports inside functions count."""
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) is None
    assert upward_imports({"detector.models.ssd": {"detector.engine.loop", "detector.core.boxes"}}) == [
        "detector.models.ssd (models) imports detector.engine.loop (engine)"]
    assert upward_imports({"detector.data.loader": {"detector.models.registry"}})  # data and models are apart
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from detector.cli.main import main\n")
    assert "detector.cli.main" in imports(bad)


def test_no_module_or_function_too_large():
    large = []
    for m, p in MODULES.items():
        source = p.read_text()
        if source.count("\n") > MAX_MODULE_LINES:
            large.append(f"{m}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    large.append(f"{m}.{node.name}: {n} lines")
    assert not large, large


def test_help_imports_no_torch():
    code = ("import sys; from detector.cli.main import build_parser; build_parser().format_help(); "
            "assert 'torch' not in sys.modules and 'gradio' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run([sys.executable, "-m", "detector", "train", "--help"], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0 and "--batch-size" in out.stdout
