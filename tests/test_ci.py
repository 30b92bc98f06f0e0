"""CI runs what README tells a newcomer, and tests never leave the running interpreter (issue 13).

A test that starts ``python``, ``pip`` or ``rnnlab`` by a bare name from PATH, or that builds a
virtual environment on the *base* interpreter (``venv.create(..., system_site_packages=True)``
inherits the base's site-packages, not the active venv's), passes on a system interpreter and
fails in the virtual environment most users install into.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BARE = {"python", "python3", "pip", "pip3", "rnnlab", "mlflow", "optuna", "pytest", "nox"}
SPAWNERS = {"run", "Popen", "check_call", "check_output", "call"}  # subprocess.*


def readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)\n```", section, re.S)]


def test_readme_has_the_two_commands() -> None:
    first, second = readme_blocks()
    assert first.startswith("pip install torch==2.13.0 -e . && rnnlab sweep experiments/vanishing")
    assert second == 'pip install torch==2.13.0 -e ".[test]" && python -m pytest'
    assert "python3 -m venv" in (ROOT / "README.md").read_text()


def test_ci_reads_the_commands_from_the_readme_and_runs_them_in_a_fresh_venv() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    function = re.search(r"^readme_command\(\) \{\n.*?^\}\n", script, re.M | re.S)
    assert function is not None
    for number, expected in enumerate(readme_blocks(), start=1):
        done = subprocess.run(
            ["bash", "-c", f"{function.group(0)}\nreadme_command {number}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout.strip() == expected
    assert 'python3 -m venv "$venv"' in script and 'source "$venv/bin/activate"' in script
    venv_at = script.index('source "$venv/bin/activate"')
    assert script.index('bash -c "$tests"') > venv_at  # the test command runs inside the venv
    assert script.index('bash -c "$install"') > venv_at


def _spawned_commands(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every subprocess started with a bare program name as a string literal."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        argv = node.args[0]
        if name in SPAWNERS and isinstance(argv, ast.List | ast.Tuple) and argv.elts:
            head = argv.elts[0]
            if isinstance(head, ast.Constant) and head.value in BARE:
                found.append((node.lineno, str(head.value)))
    return found


def _venvs_on_the_base(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "create"):
            continue
        if any(k.arg == "system_site_packages" for k in node.keywords):
            lines.append(node.lineno)
    return lines


SOURCES = sorted(
    p
    for folder in ("tests", "benchmarks", "docs")
    for p in (ROOT / folder).rglob("*.py")
    if "example_plugin" not in p.parts or p.parent.name == "tests"
)


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_subprocesses_use_the_running_interpreter(path: Path) -> None:
    assert _spawned_commands(path) == [], "use sys.executable (-m pip / -m rnnlab / -m pytest)"
    assert _venvs_on_the_base(path) == [], "a venv on the base interpreter misses the active venv"


def test_the_scan_finds_a_bare_name_and_a_base_venv(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import subprocess, venv\n"
        "subprocess.run(['rnnlab', 'plugins'])\n"
        "venv.create('x', system_site_packages=True)\n"
    )
    assert _spawned_commands(planted) == [(2, "rnnlab")]
    assert _venvs_on_the_base(planted) == [3]
