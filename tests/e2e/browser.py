"""A real browser for the dashboard's tests: Debian's headless Chromium, driven by Selenium
through Debian's chromedriver (both installed by hack/setup.sh), on loopback only."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
WAIT_SECONDS = 60
WIDTH, HEIGHT = 1400, 1000


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.fail("chromium and chromedriver are missing: hack/setup.sh installs them")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={WIDTH},{HEIGHT}", "--no-first-run", "--disable-extensions"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


class Page:
    """The browser on the dashboard: sign in, open a page, wait for what it shows."""

    def __init__(self, driver: Any, base_url: str, shots: Path) -> None:
        self.driver, self.base_url, self.shots = driver, base_url, shots

    def sign_in(self, token: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.delete_all_cookies()
        self.open("/login")
        self.screenshot("login")  # before the token is typed in
        self.driver.find_element(By.ID, "token").send_keys(token)
        self.driver.find_element(By.ID, "sign-in").click()
        self.until(lambda d: d.find_element(By.ID, "who").text, what="signed in")

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def until(self, condition: Callable[[Any], Any], *, what: str) -> Any:
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
        )
        from selenium.webdriver.support.ui import WebDriverWait

        # IndexError: an element the page has not drawn yet (``css(...)[0]``).
        ignored = (NoSuchElementException, StaleElementReferenceException, IndexError)
        wait = WebDriverWait(self.driver, WAIT_SECONDS, ignored_exceptions=ignored)
        return wait.until(condition, message=f"waiting for {what}")

    def css(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def screenshot(self, name: str) -> Path:
        """The whole page (the window grown to its height for the shot), as ``dashboard-NAME.png``."""
        path = self.shots / f"dashboard-{name}.png"
        height = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
        self.driver.set_window_size(WIDTH, min(max(height, HEIGHT), 4 * HEIGHT))
        try:
            assert self.driver.save_screenshot(str(path)), path
        finally:
            self.driver.set_window_size(WIDTH, HEIGHT)
        return path


def script_errors(driver: Any) -> list[str]:
    """The console's errors but the browser's own line for each HTTP error answer (a 403 is expected)."""
    entries = driver.get_log("browser")
    return [e["message"] for e in entries if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]]
