"""The layout shows the architecture: a pure core, frontends, demo support, the page; the README lists it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "ai_edge_litert", "streamlit", "onnx", "onnxruntime", "plotly")
STDLIB = set(sys.stdlib_module_names)


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_core_imports_only_numpy_networkx_and_itself():
    for path in sorted((ROOT / "fold" / "core").glob("*.py")):
        for module in _imported_modules(path):
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


def test_the_readme_lists_every_module():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    modules = [p.relative_to(ROOT).as_posix() for package in ("fold", "demo", "viz", "bench", "sections", "browser")
               for p in sorted((ROOT / package).rglob("*.py"))] + ["app.py"]
    missing = [m for m in modules if f"`{m}`" not in layout]
    assert not missing, f"README's Layout section does not list {missing}"
