"""The shape of the repository, checked: what ships, what imports what, what the README says.

The deployed package must not depend on the local stack, the benchmarks or the tests (they are left
out of the upload); the offline lint must not load the Firestore SDK; conftest files hold fixtures
only; the README's layout names every folder and module there is, and only those.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stacks import ROOT

PACKAGE = ROOT / "worker_llm_client"
NOT_SHIPPED = ("devstack", "benchmarks", "tests")
BUILD_OUTPUT = (".egg-info", "__pycache__", "build", "dist")
DESCRIPTION_COLUMN = 26  # where the README's layout lines start their descriptions


def _python_files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        yield from [root] if root.is_file() else sorted(root.rglob("*.py"))


def _imported_modules(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def _imports_of(roots: tuple[Path, ...], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in _python_files(*roots)
        for module in _imported_modules(path)
        if module.split(".")[0] in forbidden
    ]


def test_the_deployed_code_imports_nothing_that_is_not_deployed() -> None:
    assert _imports_of((PACKAGE, ROOT / "main.py"), NOT_SHIPPED) == []


def test_the_local_stack_and_the_benchmarks_do_not_import_the_tests() -> None:
    assert _imports_of((ROOT / "devstack", ROOT / "benchmarks"), ("tests",)) == []


def test_the_upload_leaves_out_what_is_not_deployed() -> None:
    """The function's source is the archive Terraform builds from an include list
    (``deploy/terraform``): the package, ``main.py`` and the lock, nothing else."""
    from tests.unit.test_terraform import uploaded

    files = uploaded()
    assert "main.py" in files and "requirements.txt" in files
    assert [f for f in files if f.split("/")[0] in (*NOT_SHIPPED, "docs", "deploy", "scripts")] == []


def test_the_offline_lint_does_not_load_the_firestore_sdk() -> None:
    probe = (
        "import sys; from worker_llm_client.catalog.lint import lint; from pathlib import Path; "
        "lint(Path('.')); print(sorted(m for m in sys.modules if m.startswith('google.cloud.firestore')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("conftest", sorted((ROOT / "tests").rglob("conftest.py")), ids=lambda p: str(p.parent.name))
def test_conftest_files_hold_fixtures_and_hooks_only(conftest: Path) -> None:
    def is_fixture_or_hook(node: ast.FunctionDef) -> bool:
        decorators = [ast.unparse(d) for d in node.decorator_list]
        return node.name.startswith("pytest_") or any(d.startswith("pytest.fixture") for d in decorators)

    tree = ast.parse(conftest.read_text(encoding="utf-8"))
    helpers = [
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef) or (isinstance(node, ast.FunctionDef) and not is_fixture_or_hook(node))
    ]
    assert helpers == [], f"{conftest.relative_to(ROOT)}: move helpers to a plain module (tests/stacks.py)"


def _layout() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Layout\n\n```\n(.*?)```", readme, re.S)
    assert block is not None, "README.md has no Layout code block"
    return block.group(1).splitlines()


def test_the_readme_layout_names_every_top_level_entry_and_package_module() -> None:
    lines = [line for line in _layout() if not line.startswith(" " * DESCRIPTION_COLUMN)]  # not continuations
    top = {n.rstrip("/") for line in lines if not line.startswith(" ") for n in _names_before_description(line)}
    inner = {n.rstrip("/") for line in lines if line.startswith("  ") for n in _names_before_description(line)}
    top_level = _top_level_entries()
    top_level -= {"README.md", "CONTRIBUTING.md", "CHANGELOG.md", "Makefile", "pyproject.toml", "requirements.txt"}
    package = {p.name for p in PACKAGE.iterdir() if _is_module(p)}
    assert top_level - top == set(), "top-level entries missing from the README's layout"
    assert {name for name in top if not (ROOT / name).exists()} == set(), "the layout names what is not there"
    assert {name for name in package if name not in inner} == set(), "package modules missing from the layout"
    assert {name for name in inner if not (PACKAGE / name).exists()} == set(), "the layout names what is not there"


def _top_level_entries() -> set[str]:
    """What the repository holds at its top (git's view; without git, the tree minus build output)."""
    try:
        tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):  # a source tarball, a build image without git
        entries = {path.name for path in ROOT.iterdir()}
        return {name for name in entries if not name.startswith(".") and not name.endswith(BUILD_OUTPUT)}
    return {path.split("/")[0] for path in tracked.split() if not path.startswith(".")}


def _names_before_description(line: str) -> list[str]:
    """``a.py b/   what they are`` -> [a.py, b/]: the names come before a run of two spaces."""
    names_part = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
    return re.findall(r"[\w.-]+/?", names_part)


def _is_module(path: Path) -> bool:
    if path.name.startswith(("_", ".")) or path.name == "__pycache__":
        return False
    return path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").exists())
