"""The layout shows the architecture: the library's layers from the pure core up (``LAYERS``, one table),
every import of every module checked against it; format names only where formats are known; no two
modules of one name; docs/layout.md lists every module, and the docs' links lead somewhere."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "ai_edge_litert", "streamlit", "onnx", "onnxruntime", "py_mini_racer")
STDLIB = set(sys.stdlib_module_names)
#: The installed packages whose imports the table rules: everything else (tests, bench, browser, app.py) may
#: import anything but the tests.
PACKAGES = ("fold", "viz", "foldscope_app")

#: The layers, from the bottom up: each one's modules (paths from the repository root, ``**`` for any depth)
#: and what of ``PACKAGES`` its modules may import (a package or module name, with everything inside it).
#: The frontends reach the rest of the library through their one door, the format table
#: (``fold.frontends.formats``); the figures know the core and nothing of the library's stages; nothing
#: in the library imports the page.
LAYERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "core": (("fold/core/*.py",), ("fold.core",)),
    "frontends": (("fold/frontends/**",), ("fold.core", "fold.frontends")),
    "engine": (("fold/engine/*.py",), ("fold.core", "fold.frontends.formats", "fold.engine")),
    "tools": (("fold/tools/*.py",), ("fold.core", "fold.frontends.formats", "fold.engine", "fold.tools")),
    "figures": (("viz/*.py",), ("fold.core", "viz")),
    "outputs": (("fold/outputs/**",),
                ("fold.core", "fold.frontends.formats", "fold.engine", "fold.tools", "fold.outputs", "viz")),
    "api": (("fold/__init__.py",), ("fold.core", "fold.frontends.formats", "fold.engine", "fold.tools")),
    "cli": (("fold/cli.py", "fold/__main__.py"),
            ("fold.core", "fold.frontends.formats", "fold.engine", "fold.tools", "fold.outputs", "fold.cli")),
    "page": (("foldscope_app/**",), PACKAGES),
}
#: The layers that know formats: the frontends (each its own, and the table of them) and the page (its
#: example models are built in their formats' own libraries, and it shows what a format adds).
FORMAT_AWARE = ("frontends", "page")
#: Format names that stand for something else where they appear: Python packages named like their
#: formats (the library a traceback's site-packages folder names).
NOT_FORMATS = {"fold/core/errors.py": {"keras", "onnx"}}
#: A module a frontend package's module may share its name with, beside the other frontend packages' (whose
#: modules of one name are the same part of another format): the core's rules, which each format's compose.
SHARED_PARTS = ("fold/core/rules.py",)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function, by its full name (``from fold.core
    import rules`` imports fold.core and fold.core.rules; relative imports resolved)."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names if _is_module(f"{base}.{alias.name}")}
    return found


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _sources(*places: str) -> list[Path]:
    """The .py files of the given packages (folders) and files, relative to the repository root."""
    return sorted(p for place in places for p in ([ROOT / place] if place.endswith(".py")
                                                  else (ROOT / place).rglob("*.py")))


def _posix(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _layer_of(path: Path) -> list[str]:
    return [name for name, (globs, _) in LAYERS.items() if any(fnmatch(_posix(path), g) for g in globs)]


def test_every_module_of_the_packages_is_in_one_layer():
    modules = _sources(*PACKAGES)
    assert len(modules) > 100, f"only {len(modules)} modules found under {ROOT}"
    wrong = {_posix(p): layers for p in modules if len(layers := _layer_of(p)) != 1}
    assert not wrong, f"modules in no layer or in several: {wrong}"


def _wrong_imports(path: Path, allowed: tuple[str, ...]) -> list[str]:
    return sorted(m for m in _imports(path)
                  if m.split(".")[0] in PACKAGES and not any(_within(m, a) for a in allowed))


def test_every_import_keeps_to_its_layer():
    """Each module imports, of the library and the page, only what its layer may (top-level and
    function-level imports alike)."""
    wrong = {}
    for path in _sources(*PACKAGES):
        (layer,) = _layer_of(path)
        if bad := _wrong_imports(path, LAYERS[layer][1]):
            wrong[f"{_posix(path)} ({layer})"] = bad
    assert not wrong, f"imports across the layers: {wrong}"


def test_the_layer_check_catches_a_wrong_import(tmp_path, monkeypatch):
    """The control: an engine module that imports a frontend's package, or a tool, is caught."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "fold" / "engine").mkdir(parents=True)
    module = tmp_path / "fold" / "engine" / "bad.py"
    module.write_text("from fold.core.rules import decide\nfrom fold.frontends.formats import FRONTENDS\n\n"
                      "def f():\n    from fold.frontends.onnx.view import view_of\n    import fold.tools.check\n")
    assert _wrong_imports(module, LAYERS["engine"][1]) == ["fold.frontends.onnx.view", "fold.tools.check"]


#: The one core module that imports a framework: it imports TensorFlow quietly, when asked to.
QUIET = "fold/core/quiet.py"


def test_core_imports_only_numpy_networkx_and_itself():
    for path in _sources("fold/core"):
        if _posix(path) == QUIET:
            continue
        for module in _imports(path):
            top = module.split(".")[0]
            assert top in STDLIB or top in ("numpy", "networkx") or module.startswith("fold.core"), \
                f"{_posix(path)} imports {module}"


def _format_names() -> set[str]:
    from fold.frontends.formats import FRONTENDS

    return set(FRONTENDS)


def _named_formats(path: Path, names: set[str]) -> list[str]:
    """The format names a module spells out as a string (a docstring or a message that says "onnx"
    among other words is no such name)."""
    skip = NOT_FORMATS.get(path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else "", set())
    return sorted({node.value for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, ast.Constant) and node.value in names and node.value not in skip})


def test_format_names_appear_only_where_formats_are_known():
    """Outside the frontends (and the page), the library knows formats through the table alone: it
    names none, and imports no frontend module but the table (the layer table says so for imports)."""
    names = _format_names()
    assert names >= {"keras", "graphdef", "tflite", "onnx", "circle"}
    wrong = {_posix(p): found for p in _sources(*PACKAGES) if _layer_of(p)[0] not in FORMAT_AWARE
             and (found := _named_formats(p, names))}
    assert not wrong, f"format names outside the frontends: {wrong}"
    for path in _sources(*PACKAGES):
        if _layer_of(path)[0] not in FORMAT_AWARE:
            reached = [m for m in _imports(path)
                       if _within(m, "fold.frontends") and not _within(m, "fold.frontends.formats")]
            assert not reached, f"{_posix(path)} imports {reached}"


def test_the_format_name_check_catches_a_name(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('"""Reads onnx files."""\nKIND = "onnx"\nLABEL = "ONNX"\n')
    assert _named_formats(module, {"onnx", "keras"}) == ["onnx"]


def test_no_two_modules_share_a_name():
    """A file's name says what it holds, once: the only names that repeat are the parts every frontend
    package has (io, match, rules, view, ...: the same part of another format), and the core's rules."""
    by_name: dict[str, list[str]] = {}
    for path in _sources(*PACKAGES):
        if path.name not in ("__init__.py", "__main__.py"):
            by_name.setdefault(path.name, []).append(_posix(path))
    parts = re.compile(r"fold/frontends/[a-z_]+/[a-z_0-9]+\.py")
    twice = {name: paths for name, paths in by_name.items() if len(paths) > 1 and
             not all(parts.fullmatch(p) or p in SHARED_PARTS for p in paths)}
    assert not twice, f"modules of one name in different roles: {twice}"


def test_the_modules_import_each_other_in_no_cycle():
    import networkx as nx

    graph = nx.DiGraph()
    for path in _sources(*PACKAGES):  # a module's own packages (run before it anyway) are no edge
        name = _module_name(path)
        graph.add_edges_from((name, m) for m in _imports(path)
                             if m.split(".")[0] in PACKAGES and _is_module(m) and not _within(name, m))
    cycles = sorted(sorted(c) for c in nx.simple_cycles(graph))
    assert not cycles, f"modules that import each other in a cycle: {cycles}"


def _loaded_after(statement: str) -> list[str]:
    code = f"import sys; {statement}; print(sorted({{m.split('.')[0] for m in sys.modules}}))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    return [m for m in loaded if m in HEAVY]


def test_core_and_the_frontend_table_load_no_framework():
    statement = ("import fold, fold.core.affine, fold.core.kinds, fold.core.rules, fold.core.graph, "
                 "fold.core.verification, fold.core.result, fold.frontends.formats, fold.engine.pipeline, "
                 "fold.outputs.report, fold.tools.peer_runs, fold.tools.int8_report, fold.cli")
    assert _loaded_after(statement) == []


def test_viz_loads_no_framework():
    assert _loaded_after("import viz") == []


#: The frontends that read a format's ops; they may share ``fold.frontends.ops``, not each other.
OP_LEVEL = ("graphdef", "tflite", "onnx", "circle")
#: The flatbuffer formats, which also share ``fold.frontends.flatbuffer`` (circle is TFLite's schema extended).
FLATBUFFER = ("tflite", "circle")


def test_op_level_frontends_do_not_import_each_other():
    for name in OP_LEVEL:
        others = [f"fold.frontends.{other}" for other in OP_LEVEL if other != name]
        others += [] if name in FLATBUFFER else ["fold.frontends.flatbuffer"]
        for path in _sources(f"fold/frontends/{name}"):
            wrong = sorted(m for m in _imports(path) if any(_within(m, other) for other in others))
            assert not wrong, f"{_posix(path)} imports {wrong} (shared code goes to fold.frontends.ops)"


def test_the_shared_flatbuffer_layer_knows_no_binding_and_no_format():
    """Each flatbuffer format hands its own schema binding in: the shared layer imports neither LiteRT,
    nor the circle schema, nor any runtime, nor the formats that use it."""
    for path in _sources("fold/frontends/flatbuffer"):
        wrong = sorted(m for m in _imports(path) if m.split(".")[0] in ("ai_edge_litert", "circle_schema", "tico",
                                                                           "onert", "torch")
                       or any(_within(m, f"fold.frontends.{f}") for f in OP_LEVEL))
        assert not wrong, f"{_posix(path)} imports {wrong}"


def test_only_the_tests_import_the_tests():
    for path in _sources(*PACKAGES, "bench", "browser", "app.py"):
        wrong = sorted(m for m in _imports(path) if _within(m, "tests"))
        assert not wrong, f"{_posix(path)} imports {wrong}"


def test_only_the_page_imports_streamlit():
    """Streamlit is the page's and its sections'; the library, its figures, the page's view-model and
    example models (tested headless) and the browser driver do without it."""
    for path in _sources("fold", "viz", "foldscope_app/workbench", "foldscope_app/examples", "browser"):
        wrong = sorted(m for m in _imports(path) if _within(m, "streamlit"))
        assert not wrong, f"{_posix(path)} imports {wrong}"
    assert "streamlit" not in _loaded_after("import foldscope_app.workbench.workbench, fold.outputs.html.fold_page, "
                                            "foldscope_app.workbench.why_view, foldscope_app.workbench.fold_view")


def test_app_py_only_runs_the_page():
    """The page is one package (``foldscope_app``); the repository's app.py is the frame that runs it."""
    frame = ast.parse((ROOT / "app.py").read_text())
    assert _imports(ROOT / "app.py") == {"foldscope_app.page"} and len(frame.body) == 3


def test_the_layout_page_lists_every_module():
    layout = (ROOT / "docs" / "layout.md").read_text()
    modules = [_posix(p) for p in _sources(*PACKAGES, "bench", "browser")] + ["app.py"]
    assert len(modules) > 100, f"only {len(modules)} modules found under {ROOT}"
    missing = [m for m in modules if f"`{m}`" not in layout]
    assert not missing, f"docs/layout.md does not list {missing}"


def _links(markdown: str) -> list[str]:
    """The targets of a Markdown text's links and images, outside code (a ``[x](y)`` in a code
    block or a code span is not a link)."""
    prose = re.sub(r"```.*?```", "", markdown, flags=re.S)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    return re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", prose)


def _broken_links(path: Path) -> list[str]:
    """The relative links of a Markdown file that point to no file (web addresses and anchors
    within the page are not checked; a link's own anchor is dropped)."""
    targets = [t.split("#")[0] for t in _links(path.read_text()) if not re.match(r"[a-z]+:|#", t)]
    return [t for t in targets if not (path.parent / t).exists()]


def test_every_relative_link_in_the_docs_points_to_a_file(tmp_path):
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert len(_links((ROOT / "README.md").read_text())) >= 10, "the README links to the docs pages"
    broken = {p.relative_to(ROOT).as_posix(): b for p in pages if (b := _broken_links(p))}
    assert not broken, f"links to missing files: {broken}"
    # The control: a missing file is found, and a link inside code is not taken for one.
    page = tmp_path / "page.md"
    page.write_text("[a](README.md) [b](gone.md#x) ![c](img/gone.png) `[d](code.md)` [e](https://x.org)\n")
    (tmp_path / "README.md").write_text("")
    assert _broken_links(page) == ["gone.md", "img/gone.png"]
