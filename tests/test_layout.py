"""The rooms' import rules (models/__init__.py and worker/__init__.py), checked
on every module's imports, the ones inside functions too: a module imports its
own room, the base and the rooms below its own, never one above."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Each room, lowest first, with the rooms it may import besides itself.
BASE = {
    "models.settings",
    "models.errors",
    "models.logs",
    "models.validation",
    "models.ids",
    "models.records",
}
ALLOWED: dict[str, set[str]] = {
    "models.storage": set(),
    "models.datasets": {"models.storage"},
    "models.layers": set(),
    "models.training": {"models.storage", "models.datasets", "models.layers"},
    "models.serving": {"models.storage", "models.datasets", "models.layers", "models.training"},
    "models.jobs": set(),
    "worker": {"models.*"},
    "service": {"models.*", "worker.celery_app", "worker.queue"},
}
# `fitserve worker [--supervised]` starts a worker process from the one command line.
ENTRY_POINTS = {
    ("service.cli.operators", "worker.main"),
    ("service.cli.operators", "worker.supervisor"),
}


def room_of(module: str) -> str:
    if module in BASE:
        return "base"
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "models" else parts[0]


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "models":  # `from models import errors`
                found |= {f"models.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.split(".")[0] in ("models", "service", "worker")}


def allowed(importer: str, imported: str) -> bool:
    room, target = room_of(importer), room_of(imported)
    if (importer, imported) in ENTRY_POINTS:
        return True
    if target in ("base", room) or imported == "models":
        return True
    if room == "base":
        return False
    rules = ALLOWED[room]
    return target in rules or imported in rules or ("models.*" in rules and target[:6] == "models")


def test_every_module_imports_only_its_own_room_the_base_and_rooms_below() -> None:
    broken = []
    for package in ("models", "service", "worker"):
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            module = module.removesuffix(".__init__")
            broken += [f"{module} imports {imported}" for imported in sorted(imports_of(path))
                       if not allowed(module, imported)]  # fmt: skip
    assert broken == []


def test_the_core_imports_neither_flask_nor_celery() -> None:
    for path in (ROOT / "models").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {alias.name.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.Import) for alias in node.names}  # fmt: skip
        names |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom)}  # fmt: skip
        assert not names & {"flask", "celery", "werkzeug", "kombu"}, path
