"""Headless Chromium for the study page (its test and ``benchmarks/userstudy_screenshot.py``).

Needs Debian's ``chromium`` and ``chromium-driver`` packages and ``selenium`` (none of them a
dependency of the pipeline: only what opens the page in a browser imports this). The browser and
driver are found on ``PATH`` (or ``FINENET_CHROMIUM`` / ``FINENET_CHROMEDRIVER``) and handed to
selenium by path, so selenium never tries to download one.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find() -> tuple[str | None, str | None, str]:
    """(browser, driver, why not): the two paths, or None and the reason they cannot be used."""
    browser = os.environ.get("FINENET_CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)
    driver = os.environ.get("FINENET_CHROMEDRIVER") or shutil.which("chromedriver")
    missing = [what for what, path in (("chromium (apt-get install chromium)", browser),
                                       ("chromedriver (apt-get install chromium-driver)", driver)) if not path]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install selenium)")
    return browser, driver, ("not installed: " + ", ".join(missing)) if missing else ""


@contextlib.contextmanager
def chrome(downloads: Path | None = None, width: int = 1280, height: int = 1000):
    """A headless Chromium (selenium WebDriver) whose downloads go to ``downloads`` without asking."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver, why = find()
    if why:
        raise RuntimeError(why)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--no-first-run", "--force-device-scale-factor=1",
                "--hide-scrollbars", f"--window-size={width},{height}"):
        options.add_argument(arg)
    if downloads is not None:
        options.add_experimental_option("prefs", {"download.default_directory": str(Path(downloads).resolve()),
                                                  "download.prompt_for_download": False,
                                                  "download.directory_upgrade": True,
                                                  "safebrowsing.enabled": False})
    session = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield session
    finally:
        session.quit()


def full_page_png(session) -> bytes:
    """A screenshot of the whole page (not just the window), as PNG bytes."""
    size = session.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = session.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    return base64.b64decode(shot["data"])
