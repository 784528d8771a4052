"""The layout's rules: dependencies run sync -> signals, and no module grows past 400 lines."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The one documented exception: the writer queues each signal's delivery in the
# same transaction as its INSERT, through sync.outbox (the per-database SQL
# modules are handed what they need by the writer).
MAY_IMPORT_SYNC = {"signals/writepath/writer.py"}
MAX_LINES = 400
PROJECT_DIRS = ("signalhub", "signals", "sync", "tests", "bench", ".ci")


def imported_modules(path):
    """Yield (line, module) for every import in ``path``, function-local ones included."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def project_files(*dirs):
    for name in dirs:
        yield from sorted(path for path in (ROOT / name).rglob("*.py") if ".venv" not in path.parts)


def test_only_the_writer_imports_sync_from_the_ledger():
    found = []
    for path in project_files("signals"):
        relative = path.relative_to(ROOT).as_posix()
        if relative in MAY_IMPORT_SYNC:
            continue
        found += [f"{relative}:{line} imports {module}" for line, module in imported_modules(path)
                  if module == "sync" or module.startswith("sync.")]
    assert found == [], "dependencies run sync -> signals; the ledger must not import sync:\n" + "\n".join(found)


def test_the_import_check_sees_function_local_imports(tmp_path):
    path = tmp_path / "module.py"
    path.write_text("import os\n\ndef later():\n    from sync.models import Delivery\n    import sync.outbox\n")
    modules = [module for _, module in imported_modules(path)]
    assert "sync.models" in modules and "sync.outbox" in modules and "os" in modules


def test_no_python_file_outside_migrations_is_over_400_lines():
    long = []
    for path in project_files(*PROJECT_DIRS):
        if "migrations" in path.parts:
            continue
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            long.append(f"{path.relative_to(ROOT).as_posix()}: {lines} lines")
    assert long == [], f"split these by role (over {MAX_LINES} lines):\n" + "\n".join(long)


def test_no_migration_imports_project_code():
    found = []
    for path in project_files("signals", "sync", "signalhub"):
        if "migrations" not in path.parts:
            continue
        found += [f"{path.relative_to(ROOT).as_posix()}:{line} imports {module}"
                  for line, module in imported_modules(path)
                  if module.split(".")[0] in ("signalhub", "signals", "sync")]
    assert found == [], "a migration freezes what it needs instead of importing live code:\n" + "\n".join(found)
