"""The widgets in a real browser: Playwright drives Chromium against a JupyterLab on 127.0.0.1.

Run with ``make test-browser`` (it installs Playwright and Debian's Chromium). ``make test`` leaves
these tests out (``-m "not browser"`` in pyproject.toml). They skip when Playwright, Chromium,
JupyterLab or the ``vgenre`` kernel is missing, and fail instead when ``VGENRE_BROWSER_TEST=1``.

What they check, in the smoke profile, on a 1366x900 window with Lab's file browser open:

- an executed notebook from a run (``vgenre run``, signed, so Lab trusts it) shows its saved widget
  state as widgets, not as ``HBox(children=...)`` text;
- notebook 02, run in Lab: every flipbook slider has room (wider than 100 px), a slider moved by
  the keyboard changes the frame shown, one quiz answer changes the score and the clip;
- notebook 03, run in Lab: moving an explorer slider redraws the spectrogram;
- the executed notebook's solutions are collapsed (code and output) until clicked open.

The notebooks are not opened in place: papermill writes copies with the smoke profile's
parameters (the way ``vgenre run`` does) into a scratch folder under ``runs/``, so Lab never
touches the committed notebooks. Chromium: ``VGENRE_CHROMIUM``, else Debian's
``/usr/lib/chromium/chromium``; Playwright's own browser download is not used.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")
VIEWPORT = {"width": 1366, "height": 900}
LAB_START_S = 120
RUN_ALL_S = 300  # a notebook run in Lab, smoke profile, 2 CPU cores: 15-60 s
WIDGET_S = 60  # a widget's reaction: one round trip to the kernel, a redraw


def chromium() -> str | None:
    """Chromium's binary: ``VGENRE_CHROMIUM`` or Debian's; None when there is none."""
    named = os.environ.get("VGENRE_CHROMIUM")
    candidates = [named] if named else [*CHROMIUM_PATHS, shutil.which("chromium")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (make test-browser, or pip install -c constraints.txt -e '.[browser]')"
    if not chromium():
        named = os.environ.get("VGENRE_CHROMIUM")
        where = f"VGENRE_CHROMIUM={named} is not an executable" if named else \
            f"Chromium not found at {', '.join(CHROMIUM_PATHS)}"
        return f"{where} (make test-browser, or apt-get install chromium, or set VGENRE_CHROMIUM)"
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        return "JupyterLab is not installed (the `lab` extra; make .venv/.installed)"
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("vgenre")
    except NoSuchKernel:
        return "the Jupyter kernel `vgenre` is not registered (make .venv/.installed registers it)"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = missing()
    if reason:
        if os.environ.get("VGENRE_BROWSER_TEST") == "1":
            pytest.fail(f"VGENRE_BROWSER_TEST=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def scratch(browser):
    """A folder under runs/ (ignored by git, served by Lab), removed afterwards (runs/ too, when
    this made it and it is empty)."""
    runs = ROOT / "runs"
    made = not runs.exists()
    runs.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="browser-test-", dir=runs))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
    if made:
        try:
            runs.rmdir()
        except OSError:  # something else wrote there meanwhile
            pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab_settings(folder: Path) -> None:
    """Lab's user settings for the test: no autosave (nothing is written behind the test's back),
    every cell in the page (no windowing), no news or update checks (offline)."""
    settings = {
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }
    for name, values in settings.items():
        path = folder / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture(scope="module")
def lab(scratch, tmp_path_factory):
    """JupyterLab on 127.0.0.1 (a free port, a token), serving the repository; shut down afterwards.

    Its kernels inherit this process's environment: offline, the session's data folder."""
    home = tmp_path_factory.mktemp("lab")
    _lab_settings(home / "settings")
    port, token = _free_port(), os.urandom(16).hex()
    env = os.environ | {"JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
                        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={ROOT}", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
           "jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI runners often run as root
    log_path = home / "lab.log"
    log = log_path.open("w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def api(path: str, method: str = "GET"):
        req = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    def stop():
        try:
            api("/api/shutdown", "POST")  # shuts its kernels down too
            proc.wait(30)
        except Exception:
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if proc.poll() is None:
                os.killpg(proc.pid, sig)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    pass
        try:  # kernels are in the server's process group: none may outlive the test
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()

    deadline = time.monotonic() + LAB_START_S
    while True:
        if proc.poll() is not None:
            stop()
            pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            api("/api/status")
            break
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                stop()
                pytest.fail(f"JupyterLab did not answer in {LAB_START_S} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
    try:
        yield {"base": base, "token": token, "log": log_path}
    finally:
        stop()


@pytest.fixture
def page(request, browser, lab, tmp_path):
    """A fresh browser window of 1366x900. When the test fails, a screenshot, the page's HTML and
    the browser console's errors are kept in the test's temporary folder (the path is printed)."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(WIDGET_S * 1000)
    pg = context.new_page()
    errors = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    failed_before = request.session.testsfailed
    yield pg
    if request.session.testsfailed > failed_before or os.environ.get("VGENRE_BROWSER_KEEP"):
        try:
            pg.screenshot(path=tmp_path / "page.png", full_page=True)
            (tmp_path / "page.html").write_text(pg.content())
        except Exception as exc:
            print(f"no screenshot: {exc}")
        (tmp_path / "console.txt").write_text("\n".join(errors))
        print(f"browser: screenshot, HTML and console errors in {tmp_path}; JupyterLab's log: {lab['log']}")
    context.close()


@pytest.fixture(scope="module")
def executed(request, scratch):
    """Notebook 02 executed and signed by the runner (as ``vgenre run --profile smoke --only 02``)."""
    from helpers.runner import run_series

    request.getfixturevalue("smoke_manifest")  # not a parameter: a skip must come before the smoke set
    out, results = run_series("smoke", only=["02"], out=scratch / "run")
    assert [r.status for r in results] == ["ok"], results
    return out / "02_frame_rate_experiments.ipynb"


@pytest.fixture(scope="module")
def prepared(scratch):
    """Unexecuted copies of notebooks 02 and 03 with the smoke profile's parameters, made by papermill
    the way ``vgenre run`` passes them; by notebook number."""
    import papermill as pm

    from helpers.runner import KERNEL_NAME, list_notebooks, run_parameters

    folder = scratch / "live"
    folder.mkdir()
    books = {}
    for book in list_notebooks(["02", "03"]):
        pm.execute_notebook(str(book), str(folder / book.name), parameters=run_parameters("smoke", folder),
                            kernel_name=KERNEL_NAME, prepare_only=True, progress_bar=False)
        books[book.name[:2]] = folder / book.name
    return books


# --- driving Lab ---------------------------------------------------------------------------------

def open_notebook(page, lab, path: Path):
    """Open *path* in Lab (the file browser beside it, as a student sees it; no tabs restored from
    an earlier test) and wait for its kernel; return the notebook's panel."""
    rel = path.relative_to(ROOT).as_posix()
    page.goto(f"{lab['base']}/lab/tree/{rel}?reset&token={lab['token']}")
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    panel.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=LAB_START_S * 1000)
    assert panel.count() == 1, "one notebook open"
    page.wait_for_function("p => p.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status === 'idle'",
                           arg=panel.element_handle(), timeout=LAB_START_S * 1000, polling=250)
    return panel


def run_all(page, panel):
    """Run > Run All Cells, then wait until every code cell has run (or one failed)."""
    panel.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    page.wait_for_function(
        """(panel) => {
            const outputs = [...panel.querySelectorAll('.jp-OutputArea-output')];
            if (outputs.some(o => o.textContent.includes('Traceback (most recent call last)'))) return true;
            // the prompts of input areas: a collapsed cell (a solution) shows a placeholder whose own
            // prompt never gets a number, so it is left out
            const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
            const idle = panel.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status === 'idle';
            return idle && prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""", arg=panel.element_handle(), timeout=RUN_ALL_S * 1000, polling=500)
    errors = [t for t in panel.locator(".jp-OutputArea-output").all_inner_texts()
              if "Traceback (most recent call last)" in t]
    assert not errors, f"a cell failed in Lab:\n{errors[0][-3000:]}"


def cell(panel, source: str):
    """The code cell whose source contains *source*."""
    return panel.locator(".jp-CodeCell", has_text=source).first


def widths(locator) -> list[float]:
    return [box["width"] for box in (el.bounding_box() for el in locator.all()) if box]


def move_slider(slider, key: str = "ArrowRight"):
    """Move a slider one step with the keyboard on its handle, as a user would after clicking it."""
    handle = slider.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    handle.press(key)


def wait_src_change(img, before: str):
    img.page.wait_for_function("([el, before]) => el.src && el.src !== before", arg=[img.element_handle(), before],
                               timeout=WIDGET_S * 1000)


# --- the tests -----------------------------------------------------------------------------------

def test_executed_notebook_shows_its_saved_widgets(page, lab, executed):
    panel = open_notebook(page, lab, executed)
    flipbooks = cell(panel, "fps_flipbooks({")
    flipbooks.locator(".widget-slider").first.wait_for()
    assert flipbooks.locator(".widget-slider").count() == 4
    assert flipbooks.locator(".widget-play").count() == 4
    quiz = cell(panel, "genre_quiz(quiz")
    quiz.locator(".widget-button").first.wait_for()
    assert quiz.locator(".widget-button").count() == 6
    # the saved frames themselves, decoded by the browser
    images = flipbooks.locator("img.widget-image")
    assert images.count() == 4
    page.wait_for_function("els => els.every(e => e.complete && e.naturalWidth > 0)", arg=images.element_handles())
    texts = panel.locator(".jp-OutputArea-output").all_inner_texts()
    assert not [t for t in texts if re.match(r"\s*[HV]Box\(children=", t)], "widgets shown as text: is it trusted?"


def test_flipbooks_and_quiz_in_notebook_02(page, lab, prepared):
    panel = open_notebook(page, lab, prepared["02"])
    run_all(page, panel)
    flipbooks = cell(panel, "fps_flipbooks({")
    sliders = flipbooks.locator(".widget-slider")
    assert sliders.count() == 4
    tracks = widths(flipbooks.locator(".widget-slider .slider-container"))
    assert len(tracks) == 4 and min(tracks) > 100, f"flipbook sliders at 1366 px: {tracks} px wide"

    image = flipbooks.locator("img.widget-image").nth(1)
    readout = sliders.nth(1).locator(".widget-readout")
    before, shown = image.get_attribute("src"), readout.inner_text()
    move_slider(sliders.nth(1))
    wait_src_change(image, before)
    assert readout.inner_text() != shown

    quiz = cell(panel, "genre_quiz(quiz")
    score = quiz.locator(".widget-label", has_text="score:")
    clip = quiz.locator("img.widget-image")
    assert score.inner_text().startswith("score: 0 / 0")
    quiz.locator(".widget-label", has_text="clip 1 of").wait_for()
    before = clip.get_attribute("src")
    quiz.locator("button.widget-button").first.click()
    page.wait_for_function("el => el.textContent.includes('/ 1')", arg=score.element_handle(),
                           timeout=WIDGET_S * 1000)
    assert re.match(r"score: [01] / 1\s+\(last clip was \w+\)", score.inner_text()), score.inner_text()
    quiz.locator(".widget-label", has_text="clip 2 of").wait_for()
    assert clip.get_attribute("src") != before


def test_spectrogram_explorer_in_notebook_03(page, lab, prepared):
    panel = open_notebook(page, lab, prepared["03"])
    run_all(page, panel)
    explorer = cell(panel, "spectrogram_explorer(y")
    sliders = explorer.locator(".widget-slider")
    assert sliders.count() == 3
    tracks = widths(explorer.locator(".widget-slider .slider-container"))
    assert min(tracks) > 100, f"explorer sliders at 1366 px: {tracks} px wide"
    image = explorer.locator("img.widget-image")
    before = image.get_attribute("src")
    move_slider(sliders.nth(2), "ArrowLeft")  # n_mels 64 -> 32
    wait_src_change(image, before)
    assert sliders.nth(2).locator(".widget-readout").inner_text().strip() == "32"


def test_solutions_stay_collapsed_until_opened(page, lab, executed):
    """The executed notebook shows its exercises and hides each solution (code and output) behind a
    placeholder until the student clicks it open."""
    cells = json.loads(executed.read_text())["cells"]
    solutions = [c for c in cells if "solution" in c["metadata"].get("tags", [])]
    # JupyterLab previews a collapsed cell's first line, so a solution starts with a comment naming it
    label, first_code = next("".join(c["source"]).splitlines()[:2] for c in solutions if c["cell_type"] == "code")
    panel = open_notebook(page, lab, executed)
    placeholders = panel.locator(".jp-Cell .jp-InputPlaceholder")
    placeholders.first.wait_for()
    assert placeholders.count() == len(solutions)
    assert label in panel.locator(".jp-InputPlaceholder .jp-PlaceholderText").all_inner_texts()
    assert panel.locator(".jp-Cell .jp-OutputPlaceholder").count() == sum(c["cell_type"] == "code" for c in solutions)
    assert first_code not in panel.inner_text(), "a solution's code is visible before it is opened"
    assert "Exercises" in panel.inner_text()
    placeholders.first.scroll_into_view_if_needed()
    placeholders.first.click()
    panel.locator(".jp-CodeCell .jp-InputArea", has_text=first_code.strip()).first.wait_for(timeout=WIDGET_S * 1000)
