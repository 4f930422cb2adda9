"""The layout shows the architecture: a pure core, frontends, demo support, figures, the page and its
sections; the arrows between them point one way; docs/layout.md lists every module, and the
docs' links lead somewhere."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "ai_edge_litert", "streamlit", "onnx", "onnxruntime", "plotly")
STDLIB = set(sys.stdlib_module_names)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function, by its full name (``from demo
    import seed`` imports demo and demo.seed; relative imports resolved)."""
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


def test_core_imports_only_numpy_networkx_and_itself():
    for path in sorted((ROOT / "fold" / "core").glob("*.py")):
        for module in _imports(path):
            top = module.split(".")[0]
            assert top in STDLIB or top in ("numpy", "networkx") or module.startswith("fold.core"), \
                f"{path.relative_to(ROOT)} imports {module}"


def _loaded_after(statement: str) -> list[str]:
    code = f"import sys; {statement}; print(sorted({{m.split('.')[0] for m in sys.modules}}))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    return [m for m in loaded if m in HEAVY]


def test_core_and_the_frontend_table_load_no_framework():
    statement = ("import fold, fold.core.affine, fold.core.kinds, fold.core.rules, fold.core.graph, "
                 "fold.core.verification, fold.core.result, fold.frontend, fold.files, fold.pipeline, fold.report")
    assert _loaded_after(statement) == []


def test_viz_loads_no_framework():
    assert _loaded_after("import viz") == []


def test_viz_imports_neither_demo_nor_the_frontends():
    """Figures are drawn from data: viz knows neither the page's support nor any model format."""
    for path in _sources("viz"):
        wrong = sorted(m for m in _imports(path) if _within(m, "demo") or _within(m, "fold.frontends"))
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


def test_demo_has_no_import_cycles():
    import networkx as nx

    graph = nx.DiGraph()
    for path in _sources("demo"):
        graph.add_node(_module_name(path))
        graph.add_edges_from((_module_name(path), m) for m in _imports(path)
                             if _within(m, "demo") and m != "demo" and m != _module_name(path))
    cycles = sorted(sorted(c) for c in nx.simple_cycles(graph))
    assert not cycles, f"demo's modules import each other in a cycle: {cycles}"


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
            assert not wrong, f"{path.relative_to(ROOT)} imports {wrong} (shared code goes to fold.frontends.ops)"


def test_the_shared_flatbuffer_layer_knows_no_binding_and_no_format():
    """Each flatbuffer format hands its own schema binding in: the shared layer imports neither LiteRT,
    nor the circle schema, nor any runtime, nor the formats that use it."""
    for path in _sources("fold/frontends/flatbuffer"):
        wrong = sorted(m for m in _imports(path) if m.split(".")[0] in ("ai_edge_litert", "circle_schema", "tico",
                                                                           "onert", "torch")
                       or any(_within(m, f"fold.frontends.{f}") for f in OP_LEVEL))
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


def test_only_the_tests_import_the_tests():
    for path in _sources("fold", "demo", "viz", "bench", "sections", "browser", "app.py"):
        wrong = sorted(m for m in _imports(path) if _within(m, "tests"))
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


def test_only_the_page_imports_streamlit():
    """Streamlit is the frame's and the sections'; the library, its figures and the page's support
    (tested headless) do without it."""
    for path in _sources("fold", "demo", "viz", "browser"):
        wrong = sorted(m for m in _imports(path) if _within(m, "streamlit"))
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"
    assert "streamlit" not in _loaded_after("import demo.workbench, demo.why_view, demo.fold_view, demo.check_view")


def test_the_layout_page_lists_every_module():
    layout = (ROOT / "docs" / "layout.md").read_text()
    modules = [p.relative_to(ROOT).as_posix() for package in ("fold", "demo", "viz", "bench", "sections", "browser")
               for p in sorted((ROOT / package).rglob("*.py"))] + ["app.py"]
    assert len(modules) > 50, f"only {len(modules)} modules found under {ROOT}"
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
