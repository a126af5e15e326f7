"""The first code cell of every notebook installs the course in a hosted runtime, and only there."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from helpers.config import repo_root
from helpers.hosted import INSTALL_CELL, MISSING, first_code_cell, install_cell, write_install_cells

NOTEBOOKS = sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WHEEL = "vgenre-0.1.0-py3-none-any.whl"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_starts_with_the_install_cell(notebook):
    assert "".join(first_code_cell(json.loads(notebook.read_text()))["source"]) == INSTALL_CELL


def test_the_cell_does_nothing_where_the_course_is_installed(monkeypatch, capsys):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip ran in an installed environment"))
    exec(INSTALL_CELL, {})
    assert capsys.readouterr().out == ""


@pytest.fixture
def fresh_runtime(monkeypatch, tmp_path):
    """``helpers`` not importable, the working folder empty, no VGENRE_SOURCE; pip's calls recorded."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "helpers" else real(name, *a))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VGENRE_SOURCE", raising=False)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda args, **k: calls.append(args))
    return calls


@pytest.mark.parametrize("case", ["wheel", "wheel and VGENRE_SOURCE", "VGENRE_SOURCE", "address"])
def test_a_fresh_runtime_installs_the_wheel_else_vgenre_source_else_the_address(fresh_runtime, monkeypatch,
                                                                                   tmp_path, capsys, case):
    fork, address = "git+https://example.org/someone/fork.git", "git+https://example.org/course/course.git"
    if "wheel" in case:
        (tmp_path / WHEEL).write_bytes(b"")
    if "VGENRE_SOURCE" in case:
        monkeypatch.setenv("VGENRE_SOURCE", fork)
    exec(install_cell(address if case == "address" else None), {})
    expected = {"VGENRE_SOURCE": fork, "address": address}.get(case, f"./{WHEEL}")
    assert len(fresh_runtime) == 1 and fresh_runtime[0][-1] == expected
    assert fresh_runtime[0][1:4] == ["-m", "pip", "install"]
    assert not any("tensorflow" in a or "keras" in a for a in fresh_runtime[0])  # the runtime's own are kept
    out = capsys.readouterr().out
    assert f"installed the course from {expected}" in out and "keras" in out


def test_with_nothing_to_install_the_cell_says_what_to_upload_or_set(fresh_runtime):
    with pytest.raises(RuntimeError) as raised:
        exec(install_cell(None), {})
    assert str(raised.value) == MISSING and "\n" not in MISSING
    assert "vgenre-*.whl" in MISSING and "VGENRE_SOURCE" in MISSING
    assert fresh_runtime == []  # no pip, no git error


def _build_wheel(out):
    """The course's wheel, as `make wheel` builds it, from a copy of the package's sources."""
    src = out / "src"
    shutil.copytree(repo_root() / "helpers", src / "helpers", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo_root() / name, src / name)
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(out), str(src)]
    try:  # the build backend pyproject.toml asks for, when this environment has it: no download
        from importlib.metadata import version
        from packaging.version import Version

        if Version(version("setuptools")) >= Version("77"):
            cmd.append("--no-build-isolation")
    except Exception:
        pass
    built = subprocess.run(cmd, capture_output=True, text=True)
    if built.returncode:
        pytest.skip(f"could not build the wheel (setuptools>=77 or the package index needed): {built.stderr[-300:]}")
    return next(out.glob("vgenre-*.whl"))


def test_the_cell_installs_the_wheel_beside_a_notebook_in_a_fresh_environment(tmp_path):
    """A new virtual environment that has the course's dependencies (this environment's, seen through
    a .pth file, less the course itself) but not the course; a folder with a notebook and nothing
    else. The cell first says what to upload; with the wheel beside the notebook it installs it
    (pip offline: the dependencies are already there) and the course imports from the new environment."""
    venv, deps, folder = tmp_path / "venv", tmp_path / "deps", tmp_path / "notebook"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    deps.mkdir()
    for site in {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}:
        for entry in os.scandir(site):
            course = entry.name.startswith(("vgenre", "__editable__", "helpers")) or entry.name.endswith(".pth")
            if not course and not (deps / entry.name).exists():
                (deps / entry.name).symlink_to(entry.path)
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (venv.parent / site).joinpath("dependencies.pth").write_text(f"{deps}\n")
    folder.mkdir()
    shutil.copy(NOTEBOOKS[0], folder / NOTEBOOKS[0].name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VGENRE_"))}
    env |= {"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"}
    try:
        from importlib.metadata import version

        version("keras")
    except Exception:  # keras-nightly (make test-latest) stands in for keras: pip cannot see it as keras
        env["PIP_NO_DEPS"] = "1"
    script = INSTALL_CELL + "\nimport helpers.hosted\nprint('course at', helpers.hosted.__file__)\n"

    def run_cell():
        return subprocess.run([python, "-c", script], cwd=folder, env=env, capture_output=True, text=True,
                              timeout=300)

    nothing = run_cell()
    assert nothing.returncode != 0 and nothing.stderr.strip().splitlines()[-1] == f"RuntimeError: {MISSING}"
    assert "git" not in nothing.stderr.lower().replace("the course's wheel", "")

    wheel = _build_wheel(tmp_path / "dist")
    shutil.copy(wheel, folder / wheel.name)
    done = run_cell()
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"installed the course from ./{wheel.name}" in done.stdout
    assert f"course at {venv}" in done.stdout.replace(str(venv.resolve()), str(venv))


def test_rewriting_the_cells_is_idempotent(tmp_path):
    import shutil

    for nb in NOTEBOOKS[:2]:
        shutil.copy(nb, tmp_path / nb.name)
    write_install_cells(tmp_path)  # (a no-op once the notebooks hold INSTALL_CELL)
    assert write_install_cells(tmp_path) == []
    book = json.loads((tmp_path / NOTEBOOKS[0].name).read_text())
    book["cells"] = [c for c in book["cells"] if c.get("id") != "install-course"]
    (tmp_path / NOTEBOOKS[0].name).write_text(json.dumps(book))
    assert write_install_cells(tmp_path) == [tmp_path / NOTEBOOKS[0].name]
    assert "".join(first_code_cell(json.loads((tmp_path / NOTEBOOKS[0].name).read_text()))["source"]) == INSTALL_CELL
