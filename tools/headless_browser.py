"""A headless Chromium driven by Selenium, for the explorer's tests and the docs' screenshots.

Uses the system's `chromium` and `chromedriver` (Debian: apt-get install chromium chromium-driver),
never a downloaded one, and a fresh profile with every background network feature off: the
pages it opens are local files.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]


def browser_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver) found on PATH, or None when either is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def start_chromium(width: int = 1400, height: int = 900):
    """A selenium WebDriver on a headless Chromium that keeps the browser console's log."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = browser_paths()
    if paths is None:
        raise RuntimeError("no Chromium: install it (Debian/Ubuntu: sudo apt-get install chromium chromium-driver)")
    chromium, driver = paths
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='minigrad-chromium-')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def open_file(browser, path: str | Path) -> None:
    browser.get(Path(path).resolve().as_uri())


def open_notebook_output(browser, output_html: str, path: str | Path) -> None:
    """Show an HTML cell output as a notebook front end does, then enter the frame it holds.

    The output goes into a sandboxed frame that may run scripts and nothing else (as VS Code's
    and Colab's output frames are; JupyterLab places a trusted output in the page itself, which
    allows more). The browser is left inside the first frame the output holds (the explorer's).
    """
    import html

    page = (
        '<!doctype html><html><head><meta charset="utf-8"></head><body style="margin:0">'
        f'<iframe id="output" sandbox="allow-scripts" style="width:100%;height:760px;border:0" '
        f'srcdoc="{html.escape(output_html)}"></iframe></body></html>'
    )
    Path(path).write_text(page, encoding="utf-8")
    open_file(browser, path)
    browser.switch_to.frame(browser.find_element("id", "output"))
    browser.switch_to.frame(browser.find_element("tag name", "iframe"))
