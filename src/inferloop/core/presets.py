"""Dataset presets: a ``dataset`` section and the params it needs, written into params.yaml.

A preset is a YAML file under ``configs/`` whose top-level sections replace the same
sections of ``params.yaml`` (and are appended when absent). The text is copied as it is,
comments included, and every other section of ``params.yaml`` is left byte for byte, so the
result reads like a hand-edited file and ``git diff`` shows exactly what the preset set.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from inferloop.core.config import ParamsError
from inferloop.core.dataset import dataset_spec

__all__ = [
    "PRESET_DIR",
    "apply_preset",
    "list_presets",
    "preset_path",
]

#: Where presets live, relative to the project root.
PRESET_DIR = Path("configs")

_TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*):")


def list_presets(root: str | Path = ".") -> list[str]:
    """Names of the presets under ``<root>/configs`` (file names without ``.yaml``)."""
    folder = Path(root) / PRESET_DIR
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def preset_path(name: str, root: str | Path = ".") -> Path:
    """The file of preset ``name``; :class:`ParamsError` naming the presets there if unknown."""
    path = Path(root) / PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ParamsError(
            f"no preset {name!r} in {Path(root) / PRESET_DIR}; presets: {list_presets(root)}"
        )
    return path


def _sections(text: str) -> dict[str, str]:
    """Top-level sections of a YAML text, each with its own lines (comments above a key stay
    with that key)."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if _TOP_KEY.match(line)]
    out: dict[str, str] = {}
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
            end -= 1  # trailing comments and blanks introduce the next section
        match = _TOP_KEY.match(lines[start])
        assert match is not None
        out[match.group(1)] = "".join(lines[start:end])
    return out


def apply_preset(params_path: str | Path, preset: str | Path) -> list[str]:
    """Write the sections of ``preset`` into ``params_path``; return the sections written.

    Raises
    ------
    ParamsError
        When the preset is not YAML, holds no sections, or its ``dataset`` section is invalid
        (checked before anything is written).
    """
    preset_text = Path(preset).read_text()
    try:
        parsed = yaml.safe_load(preset_text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"preset {preset} is not valid YAML: {exc}") from exc
    if not isinstance(parsed, dict) or not parsed:
        raise ParamsError(f"preset {preset} holds no params sections")
    if "dataset" in parsed:
        dataset_spec(parsed["dataset"], where=f"{preset}: dataset")
    params = Path(params_path)
    text = params.read_text() if params.is_file() else ""
    current = _sections(text)
    for name, block in _sections(preset_text).items():
        block = block if block.endswith("\n") else block + "\n"
        if name in current:
            text = text.replace(current[name], block, 1)
        else:
            text = text.rstrip("\n") + "\n\n" + block
    params.write_text(text)
    return list(parsed)
