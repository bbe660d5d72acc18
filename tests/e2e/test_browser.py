"""The pages in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium against the app under gunicorn.

Screenshots go to ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.paths import REPO
from support.webapp import Gunicorn, database, land_and_forecast, trained_store

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    with database("sqlite", root) as url:
        settings = trained_store(root, url)
        land_and_forecast(settings)  # stored forecasts that met their outcomes
        with Gunicorn(settings, root / "gunicorn.log") as g:
            yield g


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("needs the chromium and chromium-driver packages")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, to read
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(120)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def _fill(driver, values: dict[str, str]) -> None:
    from selenium.webdriver.common.by import By

    for name, value in values.items():
        box = driver.find_element(By.ID, f"f-{name}")
        box.clear()
        box.send_keys(value)


GOOD = {
    "price": "40859.46",
    "1h": "0.022",
    "24h": "0.03",
    "7d": "0.055",
    "24h_volume": "35390763321",
    "mkt_cap": "770991461396",
    "coin": "Bitcoin",
    "symbol": "BTC",
}


def test_submit_form_shows_prediction(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.url + "/")
    assert "How liquid" in browser.find_element(By.TAG_NAME, "h1").text
    _fill(browser, GOOD)
    browser.find_element(By.ID, "predict-button").click()
    WebDriverWait(browser, 60).until(ec.visibility_of_element_located((By.ID, "result")))
    level = browser.find_element(By.ID, "result-level").text
    assert level.split()[0] in {"Low", "Medium", "High"}
    turnover = float(browser.find_element(By.ID, "result-turnover").text.split()[0])
    assert turnover > 0
    version = browser.find_element(By.ID, "result-version").text
    assert version and version == browser.find_element(By.ID, "served-version").text
    # The submitted values stay in the form.
    assert browser.find_element(By.ID, "f-price").get_attribute("value") == "40859.46"
    browser.save_screenshot(str(ARTIFACTS / "browser_predict.png"))


def test_form_marks_bad_fields(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.url + "/")
    _fill(browser, {**GOOD, "price": "-5", "mkt_cap": "lots"})
    browser.find_element(By.ID, "predict-button").click()
    WebDriverWait(browser, 60).until(ec.visibility_of_element_located((By.ID, "form-message")))
    assert browser.find_element(By.ID, "e-price").text
    assert browser.find_element(By.ID, "e-mkt_cap").text
    assert browser.find_element(By.ID, "f-price").get_attribute("aria-invalid") == "true"
    assert not browser.find_elements(By.ID, "result")
    browser.save_screenshot(str(ARTIFACTS / "browser_field_errors.png"))


def test_models_page_shows_chart(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/models")
    chart = browser.find_element(By.CSS_SELECTOR, "#r2-chart svg")
    assert chart.size["width"] > 300 and chart.size["height"] > 100
    assert browser.find_elements(By.CSS_SELECTOR, "#r2-chart svg circle.champion-marker")
    assert browser.find_elements(By.CSS_SELECTOR, "#r2-chart svg circle.run")
    rows = browser.find_elements(By.CSS_SELECTOR, "#model-history tbody tr")
    assert rows and "champion" in rows[0].text
    browser.save_screenshot(str(ARTIFACTS / "browser_models.png"))


def test_models_page_shows_realized_accuracy_and_drift(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/models")
    chart = browser.find_element(By.CSS_SELECTOR, "#realized-chart svg")
    assert chart.size["width"] > 300 and chart.size["height"] > 200
    for series in ("realized_r2", "skill", "coverage"):
        assert browser.find_elements(By.CSS_SELECTOR, f"#realized-chart .series-{series}"), series
    assert browser.find_elements(By.CSS_SELECTOR, "#realized-chart line.holdout-r2")
    assert browser.find_elements(By.CSS_SELECTOR, "#realized-chart rect.nominal-band")
    headers = browser.find_element(By.CSS_SELECTOR, "#model-history thead").text
    assert "Realized skill" in headers and "Realized coverage" in headers
    assert browser.find_elements(By.CSS_SELECTOR, "#drift-table tbody tr")
    browser.save_screenshot(str(ARTIFACTS / "browser_models_realized.png"))


def test_models_page_charts_drift_under_the_csp(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/")
    browser.get_log("browser")  # drop the console messages of earlier pages
    script = browser.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": CSP_RECORDER}
    )
    try:
        browser.get(server.url + "/models")
        chart = browser.find_element(By.CSS_SELECTOR, "#drift-chart svg")
        assert chart.size["width"] > 300 and chart.size["height"] > 60
        rows = browser.find_elements(By.CSS_SELECTOR, "#drift-table tbody tr")
        bars = browser.find_elements(By.CSS_SELECTOR, "#drift-chart rect.psi-bar")
        marks = browser.find_elements(By.CSS_SELECTOR, "#drift-chart line.threshold")
        assert rows and len(bars) == len(marks) == len(rows)
        widths = [bar.size["width"] for bar in bars]  # a PSI near 0 is a bar of no width
        assert widths == sorted(widths, reverse=True) and widths[0] > 0
        browser.execute_script("arguments[0].scrollIntoView()", chart)
        browser.save_screenshot(str(ARTIFACTS / "browser_models_drift.png"))
        violations = browser.execute_script("return window.__cspViolations")
        console = browser.get_log("browser")
    finally:
        browser.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]}
        )
    assert violations == []
    policy = [m for m in console if "Content Security Policy" in m["message"]]
    assert policy == [], policy


def test_coin_page_charts_past_forecasts(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server.url + f"/coins/{_first_symbol(server)}")
    chart = browser.find_element(By.CSS_SELECTOR, "#coin-forecast-chart svg")
    assert chart.size["width"] > 300 and chart.size["height"] > 100
    assert browser.find_elements(By.CSS_SELECTOR, "#coin-forecast-chart polyline.actual")
    # Every landed snapshot was forecast: 4 past forecasts and the newest one.
    assert len(browser.find_elements(By.CSS_SELECTOR, "#coin-forecast-chart g.forecast")) == 5
    assert browser.find_element(By.ID, "prediction-source").text == "stored forecast"
    browser.save_screenshot(str(ARTIFACTS / "browser_coin_forecasts.png"))


def test_coin_lookup(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/")
    symbol = _first_symbol(server)
    box = browser.find_element(By.ID, "lookup-symbol")
    box.send_keys(symbol)
    box.submit()
    assert browser.find_element(By.ID, "coin-prediction").is_displayed()
    assert browser.find_elements(By.CSS_SELECTOR, "table tbody tr")
    browser.save_screenshot(str(ARTIFACTS / "browser_coin.png"))


def _first_symbol(server) -> str:
    import sqlalchemy as sa

    from liquidity_core.store import db

    engine = db.get_engine(server.settings.database_url)
    with db.transaction(engine) as conn:
        return conn.execute(sa.text("SELECT MIN(symbol) FROM market_snapshots")).scalar_one()


#: Records the page's Content-Security-Policy violations (installed through the DevTools
#: protocol, which the page's policy does not govern, before any of the page's scripts).
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def test_api_docs_render_the_operations_under_the_csp(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.url + "/")
    browser.get_log("browser")  # drop the console messages of earlier pages
    script = browser.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": CSP_RECORDER}
    )
    try:
        browser.find_element(By.LINK_TEXT, "API").click()  # the site's navigation
        WebDriverWait(browser, 60).until(
            ec.visibility_of_element_located((By.ID, "operations-default-predict"))
        )
        assert browser.current_url == server.url + "/api/v1/docs"
        for operation in ("coinPrediction", "monitoring", "listModels", "healthz", "readyz"):
            assert browser.find_elements(By.ID, f"operations-default-{operation}"), operation
        # Swagger UI opens the predict operation with its request body schema.
        browser.find_element(By.CSS_SELECTOR, "#operations-default-predict button").click()
        WebDriverWait(browser, 30).until(
            ec.visibility_of_element_located(
                (By.CSS_SELECTOR, "#operations-default-predict .opblock-body")
            )
        )
        browser.save_screenshot(str(ARTIFACTS / "browser_api_docs.png"))
        violations = browser.execute_script("return window.__cspViolations")
        console = browser.get_log("browser")
    finally:
        browser.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]}
        )
    assert violations == []
    policy = [m for m in console if "Content Security Policy" in m["message"]]
    assert policy == [], policy
    errors = [m for m in console if m["level"] == "SEVERE" and "favicon.ico" not in m["message"]]
    assert errors == [], errors
