"""End-to-end: the lesson 05 explorer works in JupyterLab in a real (headless) browser.

The test starts JupyterLab from the project's environment on a free local port with a
token and throw-away settings/workspace directories, opens a *temporary copy* of
``notebooks/05_positional_encoding.ipynb`` in Debian's Chromium driven by Playwright
(``executable_path``: no browser download), runs all cells, drags the explorer's
``position`` slider and asserts that the rendered figure and summary changed. A
screenshot is saved to ``test-artifacts/`` (git-ignored).

It skips, saying why, only when Chromium or Playwright is not available
(``.ci/install-browser.sh`` installs Chromium).
"""

from __future__ import annotations

import json
import os
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


@pytest.fixture
def jupyter_lab(tmp_path):
    """A JupyterLab server on a free port serving a temporary copy of lesson 05."""
    if not JUPYTER.exists():
        pytest.skip(f"jupyter is not installed in this environment ({JUPYTER})")
    work = tmp_path / "lab"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)  # the repository's notebook is never touched
    settings = tmp_path / "settings"
    for ext, name, values in [
        # no update check or news fetch: the test must not need the network
        ("apputils-extension", "notification", {"checkForUpdates": False, "fetchNews": "false"}),
        # start the notebook's kernel without asking
        ("notebook-extension", "tracker", {"autoStartDefaultKernel": True}),
    ]:
        (settings / "@jupyterlab" / ext).mkdir(parents=True, exist_ok=True)
        (settings / "@jupyterlab" / ext / f"{name}.jupyterlab-settings").write_text(json.dumps(values))
    env = dict(
        os.environ,
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
    )
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp_path / "jupyter.log", "w")  # noqa: SIM115 (open for the process's lifetime)
    proc = subprocess.Popen(
        [
            str(JUPYTER),
            "lab",
            "--no-browser",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={work}",
            "--LabApp.news_url=None",
            "--LabApp.extension_manager=readonly",
            "--ServerApp.terminals_enabled=False",
        ]
        + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"jupyter lab exited early:\n{(tmp_path / 'jupyter.log').read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(
                    f"jupyter lab did not start:\n{(tmp_path / 'jupyter.log').read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield base, token, work
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


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


def test_positional_explorer_reacts_to_its_slider_in_chromium(jupyter_lab, tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (/usr/bin/chromium); run .ci/install-browser.sh")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - the environment pins playwright
        pytest.skip(f"the playwright Python package is not available: {exc}")
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
