"""Capture docs/html-report.png, the README's picture of the HTML report (needs chromium, chromium-driver and
selenium, as the browser test does):

    python examples/plagiarism_check.py && python docs/capture_screenshot.py examples/out/plagiarism.html
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-quic", "--hide-scrollbars",
        "--window-size=1180,640"]  # the page's first screen: about 170 KB as PNG


def main(page: str, out: str = "docs/html-report.png") -> None:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    profile = tempfile.mkdtemp(prefix="scanner-chromium-")
    for arg in [*ARGS, f"--user-data-dir={profile}"]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)
    try:
        driver.get(Path(page).resolve().as_uri())
        driver.find_element("css selector", "#side-a mark.paraphrase").click()  # show a linked pair
        driver.save_screenshot(out)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    print(f"{out}: {Path(out).stat().st_size:,} bytes")


if __name__ == "__main__":
    main(*sys.argv[1:])
