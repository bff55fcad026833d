"""The course's widgets where a learner uses them: JupyterLab in a real browser (issue 36).

The test starts JupyterLab itself, on 127.0.0.1 only, on a free port, with a random token, its settings,
workspaces and runtime files in a temporary folder (autosave off: nothing it runs is written back into a
notebook), and drives Debian's ``chromium``, headless, with Playwright. For each notebook that holds widgets
(03, 04, 05) it

1. opens the notebook as committed, untrusted, before any cell runs, and checks what a reader sees in the
   widget cells: the stored table or image of the widget's first state, never a ``VBox(children=...`` repr
   nor "Error displaying widget";
2. runs every cell (JupyterLab's *Run All*) and checks that no cell shows an error or a red stderr box;
3. uses the live widgets, and after each step asks the notebook's kernel what the Python side holds:
   - 03: types a text into the R1 box; the readout shows the R1 that the kernel's ``reward`` gives the text;
   - 04, 05: moves the ``r1 share`` slider to 0, then picks another R2 variant; after each, the rendered table
     (every row: clip, rank, answer, R) is the one ``explorer.state()`` gives, the kernel holds the slider's and
     the menu's values, and the ranking changed on at least one clip;
   - 04: sets the training panel to 2 steps and clicks *Train and redraw*; the panel shows the run's scores
     and curves, no red box, and the kernel's panel has the run;
4. saves screenshots (``$DRIVEKIT_SCREENSHOTS``, default a temporary folder; ``docs/explorer_jupyterlab.png`` in
   the README is its ``explorer_05_json_stage.png``).

It runs after the notebooks' nbval pass (``tests/conftest.py``'s ``LAST``), so its Run All reuses the runs they
left in ``runs/`` as a learner's would.

Every request the page makes, websockets included, must go to 127.0.0.1; the test stops the kernels and
JupyterLab (and kills its process group and kernels) even when it fails.

Needs Playwright (``pip install -e ".[dev]"``) and a Chromium (``apt-get install chromium`` on Debian, or
``$DRIVEKIT_CHROMIUM``). Without them it skips, saying so; under CI (``CI=true``) it fails instead.
"""
from __future__ import annotations

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
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
INSTALL = ('install Playwright (pip install -e ".[dev]") and a Chromium (Debian: apt-get install -y chromium; '
           "elsewhere set DRIVEKIT_CHROMIUM to its executable)")
RUN_LIMIT = 900  # seconds for a notebook's Run All (each notebook runs in under 5 minutes on 2 cores)
NOTEBOOKS = ["03_clip_reward", "05_json_stage", "04_a2c"]


def missing(what: str):
    message = f"{what}: {INSTALL}"
    if CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def chromium() -> str:
    path = os.environ.get("DRIVEKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        missing("no Chromium found")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SETTINGS = {  # JupyterLab user settings for the test's own settings folder
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},  # every cell in the DOM
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def kernel_pids(runtime: Path) -> list[int]:
    """The processes whose command line names a connection file in ``runtime`` (this test's kernels only)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if str(runtime) in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


class Lab:
    """A JupyterLab server of this test: ``url``, ``token``, ``stop()``."""

    def __init__(self, tmp: Path, root: Path = ROOT):
        self.tmp, self.port, self.token = tmp, free_port(), secrets.token_hex(24)
        self.url = f"http://127.0.0.1:{self.port}"
        for name, value in SETTINGS.items():
            path = tmp / "settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        self.runtime = tmp / "runtime"
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_RUNTIME_DIR=str(self.runtime),
                   PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
        self.log = open(tmp / "jupyterlab.log", "w")
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={tmp / 'settings'}",
               f"--LabApp.workspaces_dir={tmp / 'workspaces'}", "--LabApp.expose_app_in_browser=True",
               "--LabApp.news_url=", "--LabApp.extension_manager=readonly", "--ServerApp.open_browser=False",
               *(["--allow-root"] if os.geteuid() == 0 else [])]
        self.proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited ({self.proc.returncode}): {self.log_text()[-2000:]}")
            try:
                self.api("GET", "/api/status")
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError(f"JupyterLab did not answer in 90 s: {self.log_text()[-2000:]}")
                time.sleep(0.5)

    def log_text(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return (self.tmp / "jupyterlab.log").read_text(errors="replace")

    def api(self, method: str, path: str):
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def stop_kernels(self) -> None:
        for kernel in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{kernel['id']}")

    def stop(self) -> None:
        """Shut the kernels and the server down; then kill what is left: the process group, this test's kernels."""
        try:
            self.stop_kernels()
            self.api("POST", "/api/shutdown")
            self.proc.wait(timeout=20)
        except Exception:  # noqa: BLE001 - the kills below follow whatever failed
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for pid in kernel_pids(self.runtime):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    pytest.importorskip("jupyterlab", reason=f"JupyterLab missing: {INSTALL}")
    server = Lab(tmp_path_factory.mktemp("jupyterlab"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    path = chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright is not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("DRIVEKIT_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder = folder if folder.is_absolute() else ROOT / folder
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("data", "blob", "about") or parsed.hostname == "127.0.0.1"


# ---------------------------------------------------------------------------------------------
# In the page: JupyterLab's app (window.jupyterapp), the notebook's cells, its kernel
# ---------------------------------------------------------------------------------------------
CELLS = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell"  # the cells of the notebook in front
CELL_INDEX = """([needle, exact]) => {
  const cells = window.jupyterapp.shell.currentWidget.content.widgets;
  return cells.findIndex(c => c.model.type === 'code' &&
                              (exact ? c.model.sharedModel.getSource().trim() === needle
                                     : c.model.sharedModel.getSource().includes(needle)));
}"""
KERNEL_READY = """() => {
  const ctx = window.jupyterapp && window.jupyterapp.shell.currentWidget && window.jupyterapp.shell.currentWidget.sessionContext;
  return !!(ctx && ctx.session && ctx.session.kernel && ctx.session.kernel.status === 'idle');
}"""
RUN_ALL = """() => { window.__ran = undefined;
  window.jupyterapp.commands.execute('notebook:run-all-cells').then(r => { window.__ran = String(r); },
                                                                     e => { window.__ran = 'error: ' + e; }); }"""
EXECUTE = """async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = kernel.requestExecute({code, store_history: false, silent: false});
  let out = '';
  future.onIOPub = (msg) => {
    const t = msg.header.msg_type;
    if (t === 'stream') out += msg.content.text;
    if (t === 'error') out += 'ERROR ' + msg.content.ename + ': ' + msg.content.evalue;
  };
  await future.done;
  return out;
}"""
ROWS = """(root) => Array.from(root.querySelectorAll('table.drivekit-ranking tr.answer')).map(tr => {
  const td = tr.querySelectorAll('td');
  return [tr.dataset.clip, td[1].innerText, td[0].innerText.trim(), td[td.length - 2].innerText.trim()];
})"""


class Notebook:
    """One notebook open in JupyterLab in ``page``."""

    def __init__(self, page, lab: Lab, name: str, folder: str = "notebooks"):
        self.page, self.name = page, name
        # a workspace of its own, reset: JupyterLab would otherwise reopen the notebooks of the previous pages in
        # background tabs, whose cells come first in the page
        page.goto(f"{lab.url}/lab/workspaces/{name}/tree/{folder}/{name}.ipynb?reset&token={lab.token}")
        page.wait_for_selector(CELLS, timeout=120_000)
        page.wait_for_function(KERNEL_READY, timeout=120_000)

    def cell(self, needle: str, exact: bool = False):
        """The first code cell whose source holds ``needle`` (``exact``: is ``needle``)."""
        index = self.page.evaluate(CELL_INDEX, [needle, exact])
        assert index >= 0, f"{self.name}: no code cell holds {needle!r}"
        return self.page.locator(CELLS).nth(index)

    def python(self, code: str) -> str:
        out = self.page.evaluate(EXECUTE, code)
        assert "ERROR " not in out, f"{self.name}: the kernel raised on {code!r}: {out}"
        return out

    def state(self, variable: str) -> dict:
        return json.loads(self.python(f"import json as _json; print(_json.dumps({variable}.state()))"))

    def run_all(self) -> float:
        start = time.perf_counter()
        self.page.evaluate(RUN_ALL)
        self.page.wait_for_function("() => window.__ran !== undefined", timeout=RUN_LIMIT * 1000, polling=1000)
        ran = self.page.evaluate("() => window.__ran")
        errors = self.page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        texts = [errors.nth(i).inner_text()[:600] for i in range(errors.count())]
        assert ran == "true" and not texts, f"{self.name}: Run All gave {ran}; red boxes: {texts}"
        return time.perf_counter() - start


def stored_output_is_readable(notebook: Notebook, needle: str, element: str) -> None:
    """Before its cell runs, the widget cell's stored output shows ``element`` (a table, an image)."""
    output = notebook.cell(needle).locator(".jp-OutputArea")
    output.locator(element).first.wait_for(timeout=30_000)
    text = output.inner_text()
    assert "(children=" not in text and "Error displaying widget" not in text, f"{notebook.name}: {text[:300]!r}"


def rows(explorer) -> list[list[str]]:
    return [[clip, " ".join(text.split()), rank, r] for clip, text, rank, r in explorer.evaluate(ROWS)]


def python_rows(state: dict) -> list[list[str]]:
    return [[clip, " ".join(text.split()), rank, r] for clip, text, rank, r in state["rows"]]


def wait_for_change(page, explorer, before, what: str) -> list[list[str]]:
    deadline = time.time() + 30
    while time.time() < deadline:
        now = rows(explorer)
        if now != before:
            return now
        page.wait_for_timeout(200)
    raise AssertionError(f"the table did not change after {what}")


def set_slider(container, label: str, value: str) -> None:
    """Type ``value`` into the editable readout of the slider labelled ``label`` (what a learner can do too)."""
    slider = container.locator(".widget-slider").filter(has=container.page.locator(".widget-label", has_text=label))
    readout = slider.locator(".widget-readout")
    readout.click()
    container.page.keyboard.press("Control+A")
    container.page.keyboard.type(value)
    container.page.keyboard.press("Enter")


def check_explorer(notebook: Notebook, shots: Path) -> None:
    page = notebook.page
    explorer = notebook.cell("widgets.reward_explorer(").locator(".drivekit-reward-explorer")
    explorer.wait_for(timeout=60_000)
    first = rows(explorer)
    state = notebook.state("explorer")
    assert first == python_rows(state) and len(first) > 0, f"{notebook.name}: the first table is not Python's"
    set_slider(explorer, "r1 share", "0")
    moved = wait_for_change(page, explorer, first, "the r1 share moved to 0")
    state = notebook.state("explorer")
    assert state["weights"]["r1"] == 0 and state["summary"]["changed"] >= 1, state["summary"]
    assert moved == python_rows(state), f"{notebook.name}: after the slider, the table is not Python's"
    explorer.locator("select").select_option("bleu")
    picked = wait_for_change(page, explorer, moved, "the R2 variant bleu was picked")
    state = notebook.state("explorer")
    assert state["variant"] == "bleu" and picked == python_rows(state), f"{notebook.name}: after the menu"
    assert "R2 (bleu)" in explorer.locator("table.drivekit-ranking thead").inner_text()
    explorer.scroll_into_view_if_needed()
    box = explorer.bounding_box()
    viewport = page.viewport_size
    page.screenshot(path=shots / f"explorer_{notebook.name}.png",
                    clip=dict(x=box["x"], y=max(box["y"], 0), width=min(box["width"], viewport["width"] - box["x"]),
                              height=min(box["height"], viewport["height"] - max(box["y"], 0))))


def check_r1_box(notebook: Notebook, shots: Path) -> None:
    page = notebook.page
    box = notebook.cell("widgets.r1_explorer(").locator(".drivekit-r1-explorer")
    box.wait_for(timeout=60_000)
    readout = box.locator("b.r1")
    first = readout.inner_text()
    text = "Action: Move forward; Reason: Follow traffic"
    box.locator("input[type='text']").fill(text)
    box.locator("input[type='text']").press("Enter")
    deadline = time.time() + 30  # the readout is redrawn as a new element: ask the locator again each time
    while readout.inner_text() == first:
        assert time.time() < deadline, f"{notebook.name}: R1's readout did not change in 30 s after the text was typed"
        page.wait_for_timeout(200)
    said = json.loads(notebook.python(
        "import json as _json; print(_json.dumps([explorer.text.value, explorer.value, "
        "float(reward([explorer.text.value], file_name=[explorer.picker.value])[0])]))"))
    assert said[0] == text and said[1] == pytest.approx(said[2])
    assert readout.inner_text() == f"R1 = {said[1]:+.3f}"
    box.screenshot(path=shots / f"r1_box_{notebook.name}.png")


def check_panel(notebook: Notebook, shots: Path) -> None:
    page = notebook.page
    panel = notebook.cell("panel", exact=True).locator(".drivekit-training-panel")
    panel.wait_for(timeout=60_000)
    runs_before = int(notebook.python("print(len(panel.logs))"))
    assert panel.locator(".widget-label", has_text="KL coef").count() == 1
    set_slider(panel, "steps", "2")
    deadline = time.time() + 20
    while notebook.python("print(panel.steps.value)").strip() != "2":
        assert time.time() < deadline, "the steps slider's value did not reach the kernel"
        page.wait_for_timeout(200)
    button = panel.locator("button", has_text="Train and redraw")
    button.click()
    deadline = time.time() + 300
    while int(notebook.python("print(len(panel.logs))")) == runs_before or button.is_disabled():
        assert time.time() < deadline, "the click trained nothing in 300 s"
        page.wait_for_timeout(500)
    output = panel.locator(".widget-output")
    output.locator("img").first.wait_for(timeout=30_000)  # the redrawn curves
    red = panel.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert red.count() == 0, f"red boxes in the panel: {[red.nth(i).inner_text()[:300] for i in range(red.count())]}"
    said = notebook.python("print(len(panel.logs), list(panel.logs)[-1])").split(maxsplit=1)
    assert int(said[0]) == runs_before + 1 and said[1].strip().endswith("steps=2")
    assert said[1].strip().split(" steps=")[0] in output.inner_text()  # the run's row in the score table
    panel.screenshot(path=shots / f"panel_{notebook.name}.png")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_widgets_in_jupyterlab(name, lab, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    outside, sockets = [], []

    def route(r):
        if local(r.request.url):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("websocket", lambda ws: sockets.append(ws.url))
    try:
        notebook = Notebook(page, lab, name)
        if name == "03_clip_reward":
            stored_output_is_readable(notebook, "widgets.r1_explorer(", "img")
        else:
            stored_output_is_readable(notebook, "widgets.reward_explorer(", "table tr")
        page.screenshot(path=shots / f"stored_{name}.png")
        seconds = notebook.run_all()
        print(f"{name}: Run All {seconds:.0f} s")
        if name == "03_clip_reward":
            check_r1_box(notebook, shots)
        else:
            check_explorer(notebook, shots)
        if name == "04_a2c":
            check_panel(notebook, shots)
    finally:
        page.close()
        lab.stop_kernels()  # a notebook's kernel holds its models: free the memory before the next one
    assert not outside, f"requests to other hosts than 127.0.0.1: {outside}"
    assert sockets and all(local(url.replace("ws://", "http://", 1)) for url in sockets), sockets
