"""End-to-end in JupyterLab, in a real (headless) browser: Debian's Chromium driven by Playwright.

* The lesson 05 explorer: a *temporary copy* of ``notebooks/05_positional_encoding.ipynb`` is opened,
  all cells run, the explorer's ``position`` slider is dragged and the figure and summary must change.
* The learner's journey: a temporary copy of the course (its tracked files, in a fresh git
  repository) is opened the way ``make lab`` does it (``tfmcourse lab``: copy into ``work/``, serve
  from there); from lesson 00's course map the learner follows the link to exercise 06, types a
  ``scaled_dot_product_attention`` without ``1/sqrt(d)``, runs the check and must see the named
  mistake and no frame of the course's code; fixes it and sees ✓; ``tfmcourse progress`` then shows
  6.3 passed and ``git status --porcelain`` of the course is empty. In both editions: the Korean
  one (``make lab COURSE_LANG=ko``) starts on the Korean lesson 00, whose heading Chromium must draw
  with a Korean font (no empty boxes), and must show the mistake in Korean.

Servers run on a free local port with a token and throw-away settings/workspace directories.
Screenshots are saved to ``test-artifacts/`` (git-ignored), also when a step fails. The tests skip,
saying why, only when Chromium or Playwright is not available (``.ci/install-browser.sh`` installs
Chromium and the Korean font fonts-nanum).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "05_positional_encoding.ipynb"
JUPYTER = Path(sys.executable).parent / "jupyter"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EXPLORER = ".tfm-pe-explorer"


def _chromium() -> str | None:
    for candidate in (os.environ.get("TFM_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab_environment(tmp_path) -> dict:
    """Throw-away JupyterLab settings: no network, kernels start without asking."""
    settings = tmp_path / "settings"
    for ext, name, values in [
        # no update check or news fetch: the test must not need the network
        ("apputils-extension", "notification", {"checkForUpdates": False, "fetchNews": "false"}),
        # start the notebook's kernel without asking
        ("notebook-extension", "tracker", {"autoStartDefaultKernel": True}),
    ]:
        (settings / "@jupyterlab" / ext).mkdir(parents=True, exist_ok=True)
        (settings / "@jupyterlab" / ext / f"{name}.jupyterlab-settings").write_text(json.dumps(values))
    return dict(
        os.environ,
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
    )


def _server_options(port: int, token: str) -> list[str]:
    return [
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        "--LabApp.news_url=None",
        "--LabApp.extension_manager=readonly",
        "--ServerApp.terminals_enabled=False",
    ] + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])


@contextlib.contextmanager
def _serving(cmd: list[str], cwd: Path, env: dict, log_path: Path, port: int, token: str):
    """Run a JupyterLab command until it answers on ``port``; stop it and its kernels afterwards."""
    log = open(log_path, "w")  # noqa: SIM115 (open for the process's lifetime)
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited early:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"jupyter lab did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture
def jupyter_lab(tmp_path):
    """A JupyterLab server on a free port serving a temporary copy of lesson 05."""
    if not JUPYTER.exists():
        pytest.skip(f"jupyter is not installed in this environment ({JUPYTER})")
    work = tmp_path / "lab"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)  # the repository's notebook is never touched
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [str(JUPYTER), "lab", f"--ServerApp.root_dir={work}", *_server_options(port, token)]
    with _serving(cmd, work, _lab_environment(tmp_path), tmp_path / "jupyter.log", port, token) as base:
        yield base, token, work


def _state(page):
    """The explorer's rendered figure (img src) and summary text."""
    return page.evaluate(
        """(sel) => {
            const root = document.querySelector(sel);
            if (!root) return null;
            const img = root.querySelector('img');
            const readout = root.querySelector('.widget-readout');
            const summary = root.querySelector('.widget-html');
            return {src: img ? img.getAttribute('src') : '', text: summary ? summary.innerText : '',
                    slider: readout ? readout.innerText.trim() : ''};
        }""",
        EXPLORER,
    )


def _accept_kernel_dialog(page, wait_ms=3000):
    """If JupyterLab asks which kernel to start, take the notebook's own (the default)."""
    button = page.locator(".jp-Dialog .jp-mod-accept")
    try:
        button.wait_for(state="visible", timeout=wait_ms)
    except Exception:
        return
    button.click()


def _wait_for_change(page, before, timeout_s):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        now = _state(page)
        if now and now["src"] and now["src"] != before["src"] and now["text"] != before["text"]:
            return now
        page.wait_for_timeout(250)
    return _state(page)


def _browser_or_skip():
    """Debian's Chromium and playwright's ``sync_playwright``, or skip the test naming what is missing."""
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (/usr/bin/chromium); run .ci/install-browser.sh")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - the environment pins playwright
        pytest.skip(f"the playwright Python package is not available: {exc}")
    return chromium, sync_playwright


def test_positional_explorer_reacts_to_its_slider_in_chromium(jupyter_lab, tmp_path):
    chromium, sync_playwright = _browser_or_skip()
    base, token, _work = jupyter_lab
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "browser_05_positional_explorer.png"
    before_disk = NOTEBOOK.read_bytes()

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh --user-data-dir
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(120_000)
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}&reset")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", state="visible")
            # wait for the kernel to be ready, then Run > Run All Cells
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached")
            _accept_kernel_dialog(page)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            _accept_kernel_dialog(page)

            # ipywidgets 8 shows an Image widget as <img src="blob:…">: a new URL for every redraw
            explorer = page.wait_for_selector(f"{EXPLORER} img[src]", state="attached", timeout=180_000)
            explorer.scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            before = _state(page)
            assert "position 10," in before["text"] and before["slider"] == "10", before

            # drag the first slider (position) to the right, as a learner would
            handle = page.locator(f"{EXPLORER} .widget-slider .noUi-handle").first
            box = handle.bounding_box()
            assert box is not None, "the position slider's handle is not rendered"
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(x + 60, y, steps=8)
            page.mouse.move(x + 120, y, steps=8)
            page.mouse.up()
            after = _wait_for_change(page, before, timeout_s=60)
            if after["src"] == before["src"]:  # fall back to the keyboard if the drag was not taken
                handle.focus()
                for _ in range(5):
                    page.keyboard.press("ArrowRight")
                after = _wait_for_change(page, before, timeout_s=60)
            # let the kernel catch up with the slider's final value before the screenshot
            deadline = time.time() + 60
            while time.time() < deadline and f"position {after['slider']}," not in after["text"]:
                page.wait_for_timeout(250)
                after = _state(page)
            page.locator(EXPLORER).screenshot(path=str(shot))
            page.screenshot(path=str(ARTIFACTS / "browser_05_page.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "browser_05_failure.png"))
            raise
        finally:
            context.close()

    assert after["src"] != before["src"], "moving the slider did not redraw the explorer's figure"
    assert after["text"] != before["text"] and "position 10," not in after["text"], after["text"]
    assert after["slider"] != "10" and f"position {after['slider']}," in after["text"], (
        f"the figure should show the slider's position {after['slider']}: {after['text']}"
    )
    assert shot.exists() and shot.stat().st_size > 10_000
    assert NOTEBOOK.read_bytes() == before_disk, "the repository's notebook must not be modified"


# ---------------------------------------------------------------------------------------------
# The learner's journey: make lab → lesson 00 → exercise 06 → a wrong answer → ✓ → progress.

WRONG_SDPA = """import math

def scaled_dot_product_attention(q, k, v, attn_mask=None):
    scores = q @ k.transpose(-2, -1)
    if attn_mask is not None:
        scores = scores.masked_fill(attn_mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return weights @ v, weights
"""
RIGHT_SDPA = WRONG_SDPA.replace("k.transpose(-2, -1)", "k.transpose(-2, -1) / math.sqrt(q.shape[-1])")


def _course_copy(tmp_path) -> Path:
    """The course's tracked files (as they are in the working tree) in a fresh, clean git repository."""
    course = tmp_path / "course"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for rel in filter(None, tracked):
        if (ROOT / rel).is_file():
            (course / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / rel, course / rel)
    git = ["git", "-c", "user.name=learner", "-c", "user.email=learner@example.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=course, check=True)
    subprocess.run(["git", "add", "-A"], cwd=course, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "course"], cwd=course, check=True)
    return course


def _cell(page, text: str):
    """The notebook cell (in the current tab) whose source contains ``text``."""
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell", has_text=text).first


def _run_cell(page, cell):
    cell.locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")


def _replace_source(page, cell, text: str):
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(text)  # one insertion: no auto-indent or auto-closed brackets


HANGUL = re.compile("[\uac00-\ud7a3]")
NOT_SCALED = "the scores are not scaled: divide q·kᵀ by sqrt(d_k)"


def _korean_text(course: Path, english_start: str) -> str | None:
    """The Korean text of the check message starting with ``english_start``, if the course has it."""
    catalogue = course / "po" / "ko" / "checks.po"
    if not catalogue.is_file():
        return None
    import polib

    for entry in polib.pofile(str(catalogue)):
        if entry.msgid.startswith(english_start) and entry.msgstr and not entry.obsolete:
            return entry.msgstr
    return None


def _fonts_drawing(page, selector: str) -> list[dict]:
    """The system fonts Chromium really used to draw the text of the first node matching ``selector``."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    document = cdp.send("DOM.getDocument", {"depth": -1})
    node = cdp.send("DOM.querySelector", {"nodeId": document["root"]["nodeId"], "selector": selector})
    return cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})["fonts"]


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_learner_journey_from_make_lab_to_a_pass_leaves_the_course_clean(tmp_path, lang):
    chromium, sync_playwright = _browser_or_skip()
    if not JUPYTER.exists():
        pytest.skip(f"jupyter is not installed in this environment ({JUPYTER})")
    from tfmcourse.workspace import first_lesson, workspace_dir

    real_work_existed = (ROOT / "work").exists()
    course = _course_copy(tmp_path)
    env = dict(_lab_environment(tmp_path), PYTHONPATH=str(course), PYTHONDONTWRITEBYTECODE="1")
    port, token = _free_port(), secrets.token_hex(16)
    workspace = workspace_dir(course, lang)
    exercise = workspace / "exercises" / "06_scaled_dot_product_attention.ipynb"
    # what `make lab COURSE_LANG=<lang>` runs (the Makefile's lab target), with a test server's options
    cmd = [sys.executable, "-m", "tfmcourse", "lab", "--lang", lang, "--", *_server_options(port, token)]
    ARTIFACTS.mkdir(exist_ok=True)
    failure_block, passed_block, heading_fonts = "", "", []
    with _serving(cmd, course, env, tmp_path / "jupyter.log", port, token) as base:
        assert exercise.is_file()
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),
                executable_path=chromium,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 1000},
            )
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(120_000)
            try:
                page.goto(f"{base}/lab/tree/{first_lesson(lang)}?token={token}&reset")
                page.wait_for_selector(".jp-NotebookPanel .jp-Cell", state="visible")
                _accept_kernel_dialog(page)
                page.screenshot(path=str(ARTIFACTS / f"browser_journey_{lang}_lesson_00.png"))
                heading_fonts = _fonts_drawing(page, ".jp-RenderedMarkdown h1")
                # the course map's link to exercise 06 opens the learner's copy of that edition
                link = page.locator(
                    ".jp-RenderedMarkdown a[href*='exercises/06_scaled_dot_product_attention']"
                )
                link.first.scroll_into_view_if_needed()
                link.first.click()
                page.wait_for_selector(
                    ".lm-TabBar-tab.lm-mod-current:has-text('06_scaled_dot_product_attention')",
                    state="visible",
                )
                page.wait_for_selector(
                    ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status='idle']",
                    state="attached",
                )
                _accept_kernel_dialog(page)
                language = _cell(page, "use_language(")  # the Korean notebooks' setup cell
                if language.count():
                    _run_cell(page, language)
                _run_cell(page, _cell(page, "from tfmcourse.checks import check_"))

                # a wrong answer: the scores are not divided by sqrt(d)
                _replace_source(page, _cell(page, "def scaled_dot_product_attention"), WRONG_SDPA)
                _run_cell(page, _cell(page, "def scaled_dot_product_attention"))
                check = _cell(page, "check_scaled_dot_product_attention(scaled_dot_product_attention)")
                _run_cell(page, check)
                error = check.locator(".jp-OutputArea-output", has_text="✗")
                error.wait_for(state="visible")
                failure_block = error.inner_text()
                check.screenshot(path=str(ARTIFACTS / f"browser_journey_{lang}_failed_check.png"))

                # the fix
                _replace_source(page, _cell(page, "def scaled_dot_product_attention"), RIGHT_SDPA)
                _run_cell(page, _cell(page, "def scaled_dot_product_attention"))
                _run_cell(page, check)
                success = check.locator(".jp-OutputArea-output", has_text="✓ scaled_dot_product_attention")
                success.wait_for(state="visible")
                passed_block = success.inner_text()
                check.screenshot(path=str(ARTIFACTS / f"browser_journey_{lang}_passed_check.png"))
                page.keyboard.press("Control+S")
                page.wait_for_timeout(1000)
            except Exception:
                page.screenshot(path=str(ARTIFACTS / f"browser_journey_{lang}_failure.png"))
                raise
            finally:
                context.close()

    assert "6.3" in failure_block and "scaled_dot_product_attention" in failure_block, failure_block
    assert "tfmcourse/checks" not in failure_block and "Traceback" not in failure_block, failure_block
    assert 'hint("scaled_dot_product_attention")' in failure_block
    if lang == "en":
        assert "✗ Exercise 6.3 · scaled_dot_product_attention" in failure_block
        assert "not scaled" in failure_block and "sqrt(d_k)" in failure_block, failure_block
        assert "correct" in passed_block, passed_block
    else:  # the page's own Hangul is drawn with a font that has Hangul glyphs, not as empty boxes
        hangul = [f for f in heading_fonts if "nanum" in f["familyName"].lower() and f["glyphCount"] > 0]
        assert hangul, f"the Korean lesson 00's heading is not drawn with a Korean font: {heading_fonts}"

    shown = subprocess.run(
        [sys.executable, "-m", "tfmcourse", "progress", "--workspace", str(workspace)],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    line = next(ln for ln in shown.stdout.splitlines() if "scaled_dot_product_attention" in ln)
    assert line.split()[:3] == ["✓", "6.3", "scaled_dot_product_attention"], shown.stdout

    status = subprocess.run(["git", "status", "--porcelain"], cwd=course, capture_output=True, text=True)
    assert status.stdout == "", f"a learner session changed the course's tracked files:\n{status.stdout}"
    assert "math.sqrt(q.shape[-1])" in exercise.read_text(), "the learner's work is saved in work/"
    assert (ROOT / "work").exists() == real_work_existed, "the test must not touch the real work/"

    if lang == "ko":
        korean = _korean_text(course, NOT_SCALED)
        assert korean, f"po/ko/checks.po has no Korean text for {NOT_SCALED!r}"
        assert korean in failure_block.replace("\n", " ") or korean in failure_block, failure_block
        assert HANGUL.search(passed_block), passed_block
