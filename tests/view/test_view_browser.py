"""The viewer in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`, through Selenium)
clicks through runs -> a run -> failures -> an example -> back -> two runs -> compare -> a regressed example,
saves a review label, and sees no console error and no executed markup on any page."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.view.conftest import PAYLOAD
from tests.view.test_view_cli import Viewer

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None, reason=(
    "no `chromium` and `chromedriver` on PATH (install them with `apt-get install -y chromium chromium-driver`)"))


@pytest.fixture
def browser(tmp_path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def assert_clean(driver) -> None:
    """No console message of any level (script errors, CSP violations, failed loads), no executed markup."""
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    logs = driver.get_log("browser")
    assert not logs, (driver.current_url, logs)
    assert not driver.find_elements(By.TAG_NAME, "script"), driver.current_url
    assert not driver.find_elements(By.CSS_SELECTOR, "img[src='x'], [onerror]"), driver.current_url
    for link in driver.find_elements(By.TAG_NAME, "a"):
        assert not (link.get_attribute("href") or "").lower().startswith("javascript:"), driver.current_url
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018


def test_click_through_the_viewer(browser, seed_store) -> None:
    from selenium.webdriver.common.by import By

    driver, a, b = browser, seed_store["a"], seed_store["b"]

    def click(css: str, lands_on: str | None = None) -> None:
        """Click; with `lands_on`, wait until the next page (whose URL contains it) has replaced this one."""
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        page = driver.find_element(By.TAG_NAME, "html")
        driver.find_element(By.CSS_SELECTOR, css).click()
        if lands_on is not None:
            WebDriverWait(driver, 30).until(expected_conditions.staleness_of(page))
            WebDriverWait(driver, 30).until(lambda d: lands_on in d.current_url)

    with Viewer(seed_store["store"]) as viewer:
        driver.get(viewer.url)
        assert driver.title.startswith("Runs") and "44/50 (88%, 95% CI 76-94%)" in driver.page_source
        assert_clean(driver)
        click(f"tr[data-run='{a}'] a.run-link", f"/runs/{a}")  # a run
        assert driver.current_url.endswith(f"/runs/{a}") and "50 example(s)" in driver.page_source
        assert_clean(driver)
        click("input[name=failures]")
        click("#apply-filters", "failures=1")  # failures only
        assert driver.find_element(By.ID, "example-count").text == "6 example(s)"
        assert "failures=1" in driver.current_url
        assert_clean(driver)
        rows = driver.find_elements(By.CSS_SELECTOR, "a.example-link")
        assert [r.text for r in rows] == ["ex044", "ex045", "ex046", "ex047", "ex048", "ex049"]
        click("a.example-link", "/examples/ex044")  # an example: the hostile answer, shown as text
        assert driver.find_element(By.ID, "output").text == PAYLOAD
        assert "question 44" in driver.find_element(By.ID, "prompt").text
        assert_clean(driver)
        driver.back()
        assert driver.find_element(By.ID, "example-count").text == "6 example(s)"
        driver.get(viewer.url)  # the runs list: pick two runs and compare them
        click(f"input[name=a][value='{a}']")
        click(f"input[name=b][value='{b}']")
        click("#compare", f"/compare/{a}/{b}")
        assert driver.current_url.endswith(f"/compare/{a}/{b}")
        assert "McNemar exact p = 0.375" in driver.page_source
        assert len(driver.find_elements(By.CSS_SELECTOR, "figure img")) == 4
        assert_clean(driver)
        click("#outcome-regressed", "outcome=regressed")
        pairs = driver.find_elements(By.CSS_SELECTOR, "tr.pair")
        assert len(pairs) == 1 and PAYLOAD.splitlines()[0] in pairs[0].text
        assert driver.find_elements(By.CSS_SELECTOR, "tr.pair mark")  # the differences, highlighted
        assert_clean(driver)
        click("tr.pair a.example-b", "/examples/ex043")  # the regressed example, in the candidate's run
        assert driver.current_url.endswith(f"/runs/{b}/examples/ex043")
        assert driver.find_element(By.ID, "output").text == PAYLOAD
        assert_clean(driver)
        click("#label-wrong")  # a review label, saved and shown
        driver.find_element(By.ID, "label-comment").send_keys("regressed: <b>not JSON</b>")
        click("#save-label", "#attempt-1")
        assert driver.current_url.endswith(f"/runs/{b}/examples/ex043#attempt-1")
        assert driver.find_element(By.ID, "label-attempt-1").text.startswith("Marked wrong")
        assert "regressed: <b>not JSON</b>" in driver.find_element(By.ID, "label-attempt-1").text
        assert_clean(driver)
        driver.get(viewer.url + f"runs/{b}")
        assert "1 answer(s) labelled" in driver.find_element(By.ID, "review-summary").text
        driver.get(viewer.url + "checks/qa")
        assert len(driver.find_elements(By.CSS_SELECTOR, "figure img")) == 1
        assert_clean(driver)
