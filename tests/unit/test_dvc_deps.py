"""Every DVC stage depends on all the inferloop code it runs (so a code change reruns it).

The code a stage runs is the import closure of what its command calls: the modules its
notebook imports, or the CLI for an ``inferloop ...`` command. Imports inside functions count:
they run when the stage runs. The dynamic twin of this test (edit a module, ``dvc status``)
runs on the real pipeline in ``tests/integration/test_pipeline.py``.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PIPELINES = ("dvc.yaml", "pipelines/retrain/dvc.yaml", "pipelines/score/dvc.yaml")


def _module_file(module: str) -> Path | None:
    base = SRC / module.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(code: str) -> set[str]:
    """inferloop modules named by the import statements anywhere in ``code``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("inferloop"):
            found.add(node.module)
            # ``from inferloop.core import schema`` imports a module too
            found |= {
                f"{node.module}.{a.name}"
                for a in node.names
                if _module_file(f"{node.module}.{a.name}")
            }
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("inferloop")}
    return {m for m in found if _module_file(m)}


def _closure(entries: set[str]) -> set[Path]:
    """Files of every module reachable from ``entries``, with their parent packages."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent __init__ runs first
        path = _module_file(module)
        if path is not None:
            todo += sorted(_imports(path.read_text()) - seen)
    return {p for m in seen if (p := _module_file(m)) is not None}


def _notebook_code(path: Path) -> str:
    """The Python of a notebook's code cells (IPython magics and shell lines left out)."""
    cells = json.loads(path.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))


def _entries(stage: dict[str, object]) -> set[str]:
    cmd = str(stage["cmd"])
    entries: set[str] = set()
    for notebook in re.findall(r"notebooks/\S+\.ipynb", cmd):
        if notebook.startswith("notebooks/"):
            entries |= _imports(_notebook_code(ROOT / notebook))
    if re.search(r"(^|&&|\s)inferloop\s", cmd):
        entries.add("inferloop.cli")
    entries |= set(re.findall(r"python -m (inferloop[\w.]*)", cmd))
    return entries


def _stages() -> list[tuple[str, str, dict[str, object]]]:
    rows = []
    for pipeline in PIPELINES:
        spec = yaml.safe_load((ROOT / pipeline).read_text())
        rows += [(pipeline, name, stage) for name, stage in spec["stages"].items()]
    return rows


@pytest.mark.parametrize(
    ("pipeline", "name", "stage"), _stages(), ids=lambda v: str(v) if isinstance(v, str) else ""
)
def test_stage_depends_on_every_module_it_runs(
    pipeline: str, name: str, stage: dict[str, object]
) -> None:
    entries = _entries(stage)
    assert entries, f"{pipeline}:{name} runs no inferloop code that this test can see"
    deps = [ROOT / str(d) for d in stage.get("deps", [])]  # type: ignore[attr-defined]
    missing = sorted(
        str(path.relative_to(ROOT))
        for path in _closure(entries)
        if not any(path == dep or dep in path.parents for dep in deps)
    )
    assert not missing, f"{pipeline}:{name} runs code it does not depend on: {missing}"


def test_closure_follows_imports_inside_functions(tmp_path: Path) -> None:
    # the closure is what this test relies on: check it on the stage whose code imports lazily
    files = _closure({"inferloop.cli"})
    assert SRC / "inferloop/scoring/batch.py" in files
    assert SRC / "inferloop/loop/production.py" in files
