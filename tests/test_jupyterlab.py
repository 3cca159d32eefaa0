"""JupyterLab starts, opens the organ-text pair browser notebook without asking for a kernel, runs it, and shows the live widget.

Driven with Playwright in the system's headless Chromium (no browser download); the notebooks are
copied to a temporary folder so the run cannot touch the repository. A screenshot is kept in
`artifacts/jupyterlab/`. Skipped where Chromium is not installed.
"""
import os, shutil, socket, subprocess, sys, time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
NOTEBOOK = '60_browse.pairs.ipynb'


def _free_port():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close(); return port


@pytest.mark.skipif(CHROMIUM is None, reason='chromium is not installed')
def test_pair_browser_runs_in_jupyterlab(tmp_path):
    from playwright.sync_api import sync_playwright
    proj = tmp_path/'proj'; shutil.copytree(ROOT/'nbs', proj/'nbs', symlinks=True)
    shutil.copy(ROOT/'settings.ini', proj/'settings.ini')
    work = proj/'nbs'
    art = ROOT/'artifacts'/'jupyterlab'; art.mkdir(parents=True, exist_ok=True)
    port, token = _free_port(), 'ctglip-test'
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path/'cfg'), JUPYTER_RUNTIME_DIR=str(tmp_path/'rt'))
    # this interpreter's JupyterLab (`jupyter lab` would run the first jupyter-lab on PATH, and its Python would run the kernel)
    lab = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--no-browser', f'--port={port}', '--ServerApp.ip=127.0.0.1',
                            f'--IdentityProvider.token={token}', '--allow-root', f'--ServerApp.root_dir={proj}'],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        for _ in range(90):
            try: socket.create_connection(('127.0.0.1', port), 1).close(); break
            except OSError: time.sleep(1)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=['--no-sandbox', '--disable-gpu'])
            page = browser.new_page(viewport={'width': 1400, 'height': 1000})
            page.goto(f'http://127.0.0.1:{port}/lab/tree/nbs/{NOTEBOOK}?token={token}')
            page.wait_for_selector('.jp-Notebook', timeout=90_000)
            page.wait_for_timeout(8000)  # a kernel-choice dialog would be up by now
            assert page.locator('.jp-Dialog').count() == 0, 'JupyterLab asked for a kernel: the notebook names none'
            # the menu by its exact labels ('text=Run' also matches any file or cell text containing 'run')
            page.click('.lm-MenuBar-itemLabel:text-is("Run")', timeout=10_000)
            page.click('.lm-Menu-itemLabel:text-is("Run All Cells")', timeout=10_000)
            page.wait_for_selector('.jupyter-widgets .widget-dropdown, .jupyter-widgets select', timeout=240_000)
            page.wait_for_timeout(3000)
            widget = page.locator('.jp-OutputArea-output .jupyter-widgets').last
            widget.scroll_into_view_if_needed()
            page.screenshot(path=str(art/'pair_browser.png'))
            assert page.locator('.jp-OutputArea-output .js-plotly-plot').count() >= 1, 'the browser drew no figure'
            errors = page.locator('.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]:has-text("Traceback")').count()
            assert errors == 0, 'a cell raised'
            browser.close()
    finally:
        lab.terminate()
        try: lab.wait(15)
        except subprocess.TimeoutExpired: lab.kill()
