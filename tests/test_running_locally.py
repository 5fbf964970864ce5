"""The README's commands for running the book locally, run as a reader would.

- `.venv/bin/jupyter lab` serves the chapters, the notebooks' kernel
  ("python3") is the project's environment, and chapter 16's explorer comes to
  life: its cells run in JupyterLab in headless Chromium, the widget's controls
  appear, and moving the sparsity slider with the keyboard changes the numbers
  it shows.
- `make serve` serves the built book.
- Every `make` target and `.venv/bin/` program the README names exists.

Runs after the notebook check (`make test` does): chapter 16 trains networks on
a cold model cache, and after `make book` (for `make serve`). Chromium and
chromedriver come from `make test` (as root), as for tests/test_book.py.
"""

from __future__ import annotations

import contextlib
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
from typing import Iterator

import nbformat
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

import chromium

# The reader's model cache, which make test's notebook check has just filled (tests/conftest.py).
pytestmark = pytest.mark.repository_cache

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
JUPYTER = ROOT / ".venv" / "bin" / "jupyter"
EXPLORER = ROOT / "notebooks" / "16_explorer.ipynb"
HTML = ROOT / "_build" / "html"

SERVER_START_S = 90    # JupyterLab up and answering its REST API
PAGE_LOAD_S = 90       # the Lab application loaded in the browser, notebook open
RUN_ALL_S = 600        # every cell of chapter 16 run (warm cache: well under a minute)
SLIDER_S = 120         # the explorer's numbers updated after a slider move
ARROW_PRESSES = 3      # slider steps of one percent
DECOY_KERNEL = "OBD_DECOY_KERNEL"


# ---------------------------------------------------------------- processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """End `process` and everything it started (it leads its own process group)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


def wait_for_url(url: str, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    """Poll `url` until it answers 200; fail early, with the log, if `process` exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            pytest.fail(f"{process.args} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer within {timeout_s} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


@contextlib.contextmanager
def jupyter_lab(root_dir: Path) -> Iterator[str]:
    """`.venv/bin/jupyter lab` serving `root_dir` on a free port; yields the base URL with its token.

    Headless, root allowed, with its own config, runtime, settings and workspace
    folders so that the user's JupyterLab settings neither leak in nor change.
    Its user data folder holds a decoy "python3" kernel, which sets DECOY_KERNEL:
    the environment's own "python3" kernel must win over a user's.
    """
    if not JUPYTER.exists():
        pytest.fail(f"{JUPYTER.relative_to(ROOT)} not found: run `make setup` (JupyterLab is in requirements.txt).")
    home = Path(tempfile.mkdtemp(prefix="obd-lab-"))
    decoy = home / "data" / "kernels" / "python3"
    decoy.mkdir(parents=True)
    (decoy / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "a user's own python3 kernel", "language": "python", "env": {DECOY_KERNEL: "1"}}))
    env = dict(os.environ,
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    port, token = free_port(), os.urandom(16).hex()
    command = [str(JUPYTER), "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
               # window.jupyterapp, so that the test can run JupyterLab's own commands
               "--LabApp.expose_app_in_browser=True",
               # offline: no update check, no news
               "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
               "--LabApp.news_url=None"]
    log = home / "lab.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=root_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_url(f"{base}/api/status?token={token}", process, log, SERVER_START_S)
        yield f"{base}/lab/tree/{{path}}?token={token}"
    finally:
        stop(process)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with chromium.chromium("lab", "1400,1000") as driver:
        driver.set_page_load_timeout(PAGE_LOAD_S)
        driver.set_script_timeout(30)
        yield driver


# ---------------------------------------------------------------- JupyterLab in the browser

# State of the open notebook, read from JupyterLab's own models (window.jupyterapp).
NOTEBOOK_STATE = """
const app = window.jupyterapp;
const panel = app && app.shell.currentWidget;
if (!panel || !panel.content || !panel.content.model || !panel.sessionContext) return null;
const session = panel.sessionContext.session;
const cells = [];
const model = panel.content.model;
for (let i = 0; i < model.cells.length; i++) {
  const cell = model.cells.get(i);
  if (cell.type !== 'code') continue;
  cells.push({count: cell.executionCount, outputs: cell.outputs.toJSON()});
}
return {path: panel.context.path,
        kernel: session && session.kernel ? {name: session.kernel.name, status: session.kernel.status} : null,
        cells: cells};
"""


def open_notebook(driver: webdriver.Chrome, url: str, path: str) -> dict:
    """Open `path` in JupyterLab and wait until its kernel is idle; returns the notebook state."""
    driver.get(url.format(path=path))

    def ready(d):
        state = d.execute_script(NOTEBOOK_STATE)
        return state if state and state["path"] == path and state["kernel"] and state["kernel"]["status"] == "idle" else None

    return WebDriverWait(driver, PAGE_LOAD_S, poll_frequency=0.5).until(
        ready, f"{path} did not open with an idle kernel within {PAGE_LOAD_S} s")


def run_all_cells(driver: webdriver.Chrome, timeout_s: float) -> dict:
    """Run every cell with JupyterLab's "Run All Cells" command; wait until all have run."""
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")

    def finished(d):
        state = d.execute_script(NOTEBOOK_STATE)
        if cell_errors(state):
            return state  # run-all stops at an error; the caller reports it
        done = all(c["count"] is not None for c in state["cells"]) and state["kernel"]["status"] == "idle"
        return state if done else None

    return WebDriverWait(driver, timeout_s, poll_frequency=1).until(
        finished, f"the cells did not finish running within {timeout_s} s")


def cell_errors(state: dict) -> list[str]:
    """`ename: evalue` of every error output of the notebook."""
    return [f"{o['ename']}: {o['evalue']}" for c in state["cells"] for o in c["outputs"]
            if o["output_type"] == "error"]


def stream_text(cell: dict) -> str:
    return "".join("".join(o["text"]) if isinstance(o["text"], list) else o["text"]
                   for o in cell["outputs"] if o["output_type"] == "stream")


# ---------------------------------------------------------------- chapter 16, live

# The explorer's controls and its summary (an ipywidgets HTML), as rendered by JupyterLab.
EXPLORER_VIEW = """
const summary = Array.from(document.querySelectorAll('.widget-html-content'))
                     .find(e => e.textContent.includes('test accuracy'));
const box = summary && summary.closest('.widget-vbox');
if (!box) return null;
const image = box.querySelector('.widget-image');
return {summary: summary.textContent,
        dropdowns: Array.from(box.querySelectorAll('.widget-dropdown'))
                        .map(e => e.querySelector('label').textContent),
        toggles: box.querySelectorAll('.widget-toggle-button').length,
        slider: Array.from(box.querySelectorAll('.widget-slider')).map(e => e.textContent),
        image: image ? image.getAttribute('src') : null};
"""

# "<...>, 80.0% of parameters pruned: test accuracy 0.1760pruned per tensor: hidden1 kernel 82%, ..."
SUMMARY = re.compile(r"([\d.]+)% of parameters pruned: test accuracy ([\d.]+)\s*pruned per tensor: (.*)")


def explorer_numbers(view: dict) -> tuple[float, float, str]:
    """(percent pruned, test accuracy, per-tensor shares) from the explorer's summary."""
    match = SUMMARY.search(view["summary"])
    assert match, f"the explorer's summary has an unexpected form: {view['summary']!r}"
    return float(match[1]), float(match[2]), match[3]


def live_copy(notebook: Path, folder: Path) -> str:
    """`notebook` without its outputs, plus a last cell printing which kernel runs it, in `folder`."""
    nb = nbformat.read(notebook, as_version=nbformat.NO_CONVERT)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.cells.append(nbformat.v4.new_code_cell(
        f"import os, sys\nprint(sys.prefix)\nprint(os.environ.get({DECOY_KERNEL!r}, 'not the decoy'))"))
    nbformat.write(nb, folder / notebook.name)
    return notebook.name


def test_explorer_lives_in_jupyterlab(browser, tmp_path):
    """Chapter 16 in JupyterLab: cells run, the explorer appears, and its slider works."""
    path = live_copy(EXPLORER, tmp_path)
    kernel_name = nbformat.read(EXPLORER, as_version=nbformat.NO_CONVERT).metadata.kernelspec.name
    with jupyter_lab(tmp_path) as url:
        state = open_notebook(browser, url, path)
        assert state["kernel"]["name"] == kernel_name, state["kernel"]

        state = run_all_cells(browser, RUN_ALL_S)
        assert not cell_errors(state), f"{path} raised in JupyterLab: {cell_errors(state)}"
        # The kernel JupyterLab chose for the notebook's kernelspec is the project's environment.
        prefix, decoy = stream_text(state["cells"][-1]).splitlines()
        assert decoy == "not the decoy", "a user's own python3 kernel ran the notebook, not .venv's"
        assert Path(prefix).resolve() == Path(sys.prefix).resolve(), f"the kernel ran in {prefix}, not {sys.prefix}"

        view = WebDriverWait(browser, 30, poll_frequency=0.5).until(
            lambda d: d.execute_script(EXPLORER_VIEW), "the explorer widget did not render")
        assert view["dropdowns"] == ["network", "seed", "saliency"], view
        assert view["toggles"] == 2 and len(view["slider"]) == 1 and view["image"], view
        # The chapter's last widget cells set the slider to 80 percent.
        before = explorer_numbers(view)
        assert before[0] == 80.0 and view["slider"] == ["pruned80%"], view

        handle = browser.find_element(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus();", handle)
        for _ in range(ARROW_PRESSES):
            handle.send_keys(Keys.ARROW_RIGHT)
        expected = before[0] + ARROW_PRESSES

        def updated(d):
            now = d.execute_script(EXPLORER_VIEW)
            return now if explorer_numbers(now)[0] == expected else None

        after = WebDriverWait(browser, SLIDER_S, poll_frequency=0.5).until(
            updated, f"the explorer did not show {expected}% pruned within {SLIDER_S} s of moving the slider")
        numbers = explorer_numbers(after)
        assert after["slider"] == [f"pruned{expected:.0f}%"], after
        assert numbers[1] != before[1] and numbers[2] != before[2], (before, numbers)
        assert after["image"] != view["image"], "the explorer's figure did not change"


# ---------------------------------------------------------------- the README's other commands


def readme_code() -> list[str]:
    """The README's code: every fenced block and every inline `code` span."""
    text = README.read_text()
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))
    return blocks + inline


def readme_commands(pattern: str) -> list[tuple[str, ...]]:
    """Every match of `pattern` in the README's code, without repeats, in order."""
    found = [m if isinstance(m, tuple) else (m,) for code in readme_code() for m in re.findall(pattern, code)]
    return list(dict.fromkeys(found))


MAKE_TARGETS = readme_commands(r"\bmake ([a-z][a-z-]*)")
VENV_COMMANDS = readme_commands(r"\.venv/bin/([\w.-]+) ([\w./-]+)")


def test_readme_names_the_commands():
    assert {"setup", "book", "test", "serve"} <= {t for (t,) in MAKE_TARGETS}, MAKE_TARGETS
    assert ("jupyter", "lab") in VENV_COMMANDS, VENV_COMMANDS


@pytest.mark.parametrize("target", [t for (t,) in MAKE_TARGETS])
def test_readme_make_target_exists(target):
    """`make -n TARGET` (print, do not run) succeeds for every `make TARGET` in the README."""
    result = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"`make {target}` (from the README): {result.stderr}"


@pytest.mark.parametrize("program, argument", VENV_COMMANDS)
def test_readme_venv_command_runs(program, argument):
    """Every `.venv/bin/PROGRAM ARG` in the README starts: `jupyter SUB --version`, `python SCRIPT --help`,
    `pytest OPTION --help`."""
    executable = ROOT / ".venv" / "bin" / program
    assert os.access(executable, os.X_OK), f".venv/bin/{program} (from the README) not found: run `make setup`."
    if program == "python":
        assert (ROOT / argument).is_file(), f"{argument} (from the README) not found"
        command = [str(executable), argument, "--help"]
    elif program == "jupyter":
        command = [str(executable), argument, "--version"]
    elif program == "pytest":
        command = [str(executable), argument, "--help"]
    else:
        pytest.fail(f"no check written for `.venv/bin/{program}` in the README")
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"`.venv/bin/{program} {argument}` (from the README): {result.stderr[-2000:]}"


def test_make_serve_serves_the_built_book():
    """`make serve` (after `make book`) answers with the built index.html; here on a free port."""
    index = HTML / "index.html"
    if not index.is_file():
        pytest.fail(f"{index.relative_to(ROOT)} not found: build the book first with `make book`.")
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="obd-serve-", suffix=".log")[1])
    with open(log, "wb") as out:
        process = subprocess.Popen(["make", "-s", "serve", f"PORT={port}"], cwd=ROOT, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/index.html"
        wait_for_url(url, process, log, SERVER_START_S)
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert answer.read() == index.read_bytes()
    finally:
        stop(process)
        log.unlink()
