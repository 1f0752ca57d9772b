"""Debian's headless Chromium, driven by Selenium, and the console's pages
as a test (or the screenshot script) works them.

Nothing is downloaded: the browser and its driver are the apt packages'
(`make browser`), named explicitly, and Selenium Manager (which would fetch
a driver) is made to fail if anything ever calls it. Chromium resolves no
name but this machine's and makes no background requests of its own."""

from __future__ import annotations

import json
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common import selenium_manager
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_SECONDS = 30

_FLAGS = [
    "--headless=new",
    "--no-sandbox",  # the tests may run as root
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--window-size=1400,1000",
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    # Only this machine: a page (or the browser) asking for any other host gets "not found".
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]

# Installed before any page script runs (in the page's own world, so the
# page's CSP does not apply to it): records each fetch the console makes
# (URL, method, the Authorization and If-None-Match it sent, whether the
# tab was visible, the status it got) and every alert, confirm or prompt a script opens.
_RECORDER = """
window.__requests = [];
window.__dialogs = [];
const realFetch = window.fetch.bind(window);
window.fetch = (input, init = {}) => {
  const headers = new Headers(init.headers || {});
  const entry = {url: String(input), method: init.method || "GET",
                 authorization: headers.get("Authorization"), ifNoneMatch: headers.get("If-None-Match"),
                 visibility: document.visibilityState, status: null};
  window.__requests.push(entry);
  return realFetch(input, init).then((response) => { entry.status = response.status; return response; });
};
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = (message) => { window.__dialogs.push([name, String(message)]); };
}
"""


class BrowserMissing(RuntimeError):
    pass


def _no_selenium_manager(*_args, **_kwargs):
    raise AssertionError("Selenium Manager was called: it would download a browser driver")


def start_browser() -> webdriver.Chrome:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        raise BrowserMissing(
            f"{', '.join(missing)} missing: `make browser` installs Debian's chromium and chromium-driver"
        )
    selenium_manager.SeleniumManager.binary_paths = _no_selenium_manager  # type: ignore[method-assign]
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in _FLAGS:
        options.add_argument(flag)
    # The page's console messages: CSP violations and uncaught errors show there.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _RECORDER})
    return driver


class Console:
    """The console in one browser tab, at base_url/console."""

    def __init__(self, driver: webdriver.Chrome, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    # --- waiting and finding ---

    def wait(self, timeout: float = WAIT_SECONDS) -> WebDriverWait:
        # The pages redraw lists as their polls answer: an element read a
        # moment ago may be gone; the condition is simply checked again.
        return WebDriverWait(
            self.driver,
            timeout,
            poll_frequency=0.05,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        )

    def until(self, condition, what: str, timeout: float = WAIT_SECONDS):
        try:
            return self.wait(timeout).until(lambda _driver: condition())
        except TimeoutException:
            raise AssertionError(f"timed out waiting for {what}; problem shown: {self.problem_text()!r}") from None

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def shown(self, css: str, timeout: float = WAIT_SECONDS) -> WebElement:
        try:
            return self.wait(timeout).until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))
        except TimeoutException:
            raise AssertionError(f"{css} never shown; problem shown: {self.problem_text()!r}") from None

    def text_of(self, css: str, contains: str, timeout: float = WAIT_SECONDS) -> WebElement:
        """The element once its text contains `contains`."""

        def found():
            for element in self.find_all(css):
                if contains in element.text:
                    return element
            return None

        return self.until(found, f"{contains!r} in {css}", timeout)

    def is_shown(self, css: str) -> bool:
        return any(element.is_displayed() for element in self.find_all(css))

    # --- acting ---

    def open(self, page: str = "") -> None:
        """Goes to /console#/page (the key, if one is kept, stays)."""
        self.driver.get(f"{self.base_url}/console#/{page}")
        self.until(lambda: self.driver.execute_script("return document.documentElement.dataset.ready"), "the console")

    def go(self, page: str) -> None:
        """Another page in the same document (a nav link's hash change)."""
        self.driver.execute_script("location.hash = arguments[0]", f"#/{page}")

    def enter_key(self, key: str, page: str = "collections") -> None:
        self.open(page)
        if self.is_shown("#forget-key"):
            self.click("#forget-key")
        self.type("#key-input", key)
        self.click("#key-use")
        self.shown("#nav")

    def click(self, css: str) -> None:
        """Clicks the element once shown (found again if a redraw replaced it)."""

        def clicked() -> bool:
            element = self.find(css)
            if not element.is_displayed():
                return False
            element.click()
            return True

        self.until(clicked, f"{css} to click")

    def type(self, css: str, text: str, clear: bool = True) -> None:
        element = self.shown(css)
        if clear:
            element.clear()
        element.send_keys(text)

    def select(self, css: str, value: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.shown(css)).select_by_value(value)

    def check(self, css: str, checked: bool = True) -> None:
        element = self.find(css)
        if element.is_selected() != checked:
            element.click()

    # --- what the page saw ---

    def problem_text(self) -> str:
        shown = self.find_all("#problem")
        return shown[0].text if shown and shown[0].is_displayed() else ""

    def requests(self) -> list[dict]:
        return self.driver.execute_script("return window.__requests || []")

    def dialogs(self) -> list:
        return self.driver.execute_script("return window.__dialogs || []")

    def script_errors(self) -> list[str]:
        """What the page logged since the last call that is not a refused
        request (the API's 4xx answers are logged too): uncaught errors,
        Content-Security-Policy or Trusted Types violations."""
        messages = [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]
        return [message for message in messages if "Failed to load resource" not in message]

    def storage(self) -> dict:
        return json.loads(
            self.driver.execute_script(
                "return JSON.stringify({session: {...sessionStorage}, local: {...localStorage}, cookie: document.cookie})"
            )
        )
