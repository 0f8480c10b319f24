"""The dashboard (/ui) in a real browser: headless Chromium driven by Selenium through the distribution's driver.

One API server for the module (`ktrdr api --embedded`: SQLite seeded with finished cycles, the embedded worker
for the cycle the page triggers) guarded by KTRDR_API_TOKEN, and one browser. Every page visit fails on a console
error or a failed request; each page's screenshot is saved under the module's temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_pipeline.insight.calibration import POWER_CURVE, SeriesOutcome, plot_power_curve, run_record, save_run
from agent_pipeline.insight.report import write_plots
from agent_pipeline.store.operations import OperationsStore, OperationType, get_store
from tests.cycles import HISTORY
from tests.e2e.shell import BIN, ROOT, clean_env
from tests.private_servers import free_port
from tests.services import forget_store, requirement_missing

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN = "dashboard-test-token"
XSS_NAME = "<script>window.__pwned=1</script>"
XSS_VERDICT = "<script>window.__pwned=2</script> looks fine"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# The README's screenshot: rewritten when missing or when this is set.
DOCS_SCREENSHOT = ROOT / "docs" / "dashboard-overview.png"
UPDATE_DOCS_ENV = "KTRDR_UPDATE_DOCS_SCREENSHOT"
FILLER_CYCLES = 27  # with the three below: two leaderboard pages of 25


# -- the seeded database -------------------------------------------------------------------------------------


def finished_cycle(store: OperationsStore, home: Path, name: str, *, error: str | None = None, **meta: Any) -> str:
    """A finished cycle with four timed phases, a strategy file and the figures the report reads."""
    cycle = store.create_cycle(max_active=1000)
    store.start(cycle.operation_id)
    children = {}
    for key, kind in (
        ("design_op_id", OperationType.AGENT_DESIGN), ("training_op_id", OperationType.TRAINING),
        ("backtest_op_id", OperationType.BACKTESTING), ("assessment_op_id", OperationType.AGENT_ASSESSMENT),
    ):  # fmt: skip
        child = store.create(operation_type=kind, parent_operation_id=cycle.operation_id)
        store.start(child.operation_id)
        summary = {"history": HISTORY, "accuracy": 0.52} if kind == OperationType.TRAINING else {}
        store.complete(child.operation_id, result_summary=summary)
        children[key] = child.operation_id
    strategy = home / "strategies" / f"{cycle.operation_id}.yaml"
    strategy.parent.mkdir(parents=True, exist_ok=True)
    strategy.write_text(f"name: {name!r}\nsymbol: EURUSD\ntimeframe: 1h\nindicators:\n  - rsi: 14\n")
    store.merge_metadata(cycle.operation_id, {
        **children, "strategy_name": name, "symbol": "EURUSD", "timeframe": "1h", "designer": "offline",
        "phase": "assessing", "strategy_path": str(strategy), "worker": "research@seeded", "cost_usd": 0.0125,
        "training_result": {"accuracy": 0.52, "balanced_accuracy": 0.47, "final_loss": 0.6, "initial_loss": 1.1},
        "training_gate": {"passed": True},
        "backtest_result": {"sharpe_ratio": 1.3, "deflated_sharpe": 0.97, "total_return": 0.12, "num_trades": 40,
                            "win_rate": 0.55, "max_drawdown": 0.08, "buy_and_hold_return": 0.05},
        "backtest_gate": {"passed": True},
        "assessment": {"verdict": "promising", "strengths": ["steady equity"], "weaknesses": ["few trades"],
                       "suggestions": ["try 4h"]},
        **meta,
    })  # fmt: skip
    if error:
        store.fail(cycle.operation_id, error_message=error)
    else:
        store.complete(cycle.operation_id, result_summary={"discovery": True, "lockbox": {"total_return": 0.0345}})
    return cycle.operation_id


def seed(home: Path) -> dict[str, str]:
    """The database the server starts on: a discovery, a `<script>` strategy, a gate failure, fillers, and a
    calibration run."""
    url = f"sqlite:///{(home / 'ktrdr.db').resolve()}"
    store = get_store(url)
    store.upgrade()
    for k in range(FILLER_CYCLES):
        finished_cycle(store, home, f"filler_{k:02d}", backtest_result={"sharpe_ratio": 0.1, "deflated_sharpe": 0.1})
    ids = {
        "best": finished_cycle(store, home, "trend_rider"),
        "xss": finished_cycle(
            store,
            home,
            XSS_NAME,
            assessment={"verdict": XSS_VERDICT, "strengths": [XSS_NAME]},
            backtest_result={"sharpe_ratio": 0.8, "deflated_sharpe": 0.5},
        ),
        "gated": finished_cycle(
            store,
            home,
            "noise_chaser",
            error="Training gate failed: accuracy_below_threshold (35% < 45%)",
            training_gate={"passed": False, "reason": "accuracy_below_threshold (35% < 45%)"},
            backtest_result=None,
            backtest_gate=None,
            assessment=None,
        ),  # fmt: skip
    }
    write_plots(store, ids["best"], home / "artifacts")  # what the cycle's end does: the pages only read plots
    outcomes = [
        SeriesOutcome(kind=kind, strength=strength, seed=s, designer="offline", symbol=f"SYN{s}", cycles_run=4,
                      rule_sharpe=strength, rule_lockbox_sharpe=strength, first_lasting_discovery=2 if found else None)
        for kind, strength, s, found in (("trend", 1.0, 1, True), ("trend", 2.0, 2, True), ("noise", 0.0, 3, False))
    ]  # fmt: skip
    record = run_record(outcomes, {"cycles": 4}, 1.0)
    saved = save_run(record, home / "artifacts" / "calibration")
    plot_power_curve(record, saved.parent / POWER_CURVE)  # as `ktrdr agent calibrate` does: the page only reads it
    forget_store(url)
    return ids


# -- the server and the browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`ktrdr api --embedded` on the seeded home, with KTRDR_API_TOKEN set; yields its URL and the cycle ids."""
    home = tmp_path_factory.mktemp("dashboard") / "home"
    ids = seed(home)
    port = free_port()
    env = clean_env(KTRDR_API_TOKEN=TOKEN, KTRDR_TRAINING_EPOCHS="40")
    log = (home / "server.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "ktrdr"), "api", "--embedded", "--home", str(home), "--port", str(port)],
        env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(base + "/api/v1/health"), 60, "the API to answer", process=process, log=home)
        yield {"url": base, "home": home, **ids}
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError):
        return False


def wait_for(check: Any, seconds: float, what: str, *, process: Any = None, log: Path | None = None) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.2)
    detail = (log / "server.log").read_text()[-3000:] if log else ""
    pytest.fail(f"timed out waiting for {what}\n{detail}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's chromium + chromium-driver) with its console log kept."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        requirement_missing("chromium / chromium-driver are not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,1000", "--disable-extensions", "--no-first-run"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def problems(driver: Any, *, allowed: tuple[str, ...] = ()) -> list[str]:
    """The console errors and failed requests since the last call (Chrome logs a failed load as SEVERE)."""
    entries = driver.get_log("browser")
    return [e["message"] for e in entries if e["level"] == "SEVERE" and not any(a in e["message"] for a in allowed)]


def visit(driver: Any, url: str, shots: Path | None = None, name: str = "") -> None:
    """Open `url`, wait for it to load, fail on any console error or failed request, save a screenshot."""
    driver.get(url)
    wait_for(lambda: driver.execute_script("return document.readyState") == "complete", 20, f"{url} to load")
    assert problems(driver) == [], url
    if shots is not None:
        driver.save_screenshot(str(shots / f"{name}.png"))


def text_of(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, css).text)


# -- the tests (in file order: the first logs in, the rest share its cookie) ---------------------------------


def test_pages_need_the_token_and_the_login_sets_a_strict_http_only_cookie(server, browser, shots) -> None:
    from selenium.webdriver.common.by import By

    # Given a server with KTRDR_API_TOKEN set, a page sends the browser to the login form
    visit(browser, server["url"] + "/ui/history?sort=created", shots, "login")
    assert "/ui/login" in browser.current_url
    # When a wrong token is entered, the form says so (a 401 the console reports)
    browser.find_element(By.ID, "token").send_keys("wrong")
    browser.find_element(By.ID, "login-form").submit()
    wait_for(lambda: "wrong token" in browser.page_source, 10, "the refusal")
    assert problems(browser, allowed=("401",)) == []
    # Then the right token opens the page asked for, with an HttpOnly, SameSite=Strict session cookie
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "login-form").submit()
    wait_for(lambda: browser.current_url.endswith("/ui/history?sort=created"), 10, "the leaderboard after login")
    cookie = browser.get_cookie("ktrdr_session")
    assert cookie is not None and cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie") == ""  # no script can read it
    assert problems(browser) == []


def test_overview_shows_finished_cycles_spend_and_workers(server, browser, shots) -> None:
    visit(browser, server["url"] + "/ui/", shots, "overview")
    recent = text_of(browser, "#recent")
    assert "trend_rider" in recent and "training_gate" in recent and "accuracy_below_threshold (35% < 45%)" in recent
    assert "No cycle is running." in text_of(browser, "#running")
    assert text_of(browser, "#spend").startswith("$0.3750 of $5.00")  # 30 cycles at $0.0125, today
    assert "research@seeded" in text_of(browser, "#workers")
    assert text_of(browser, "#since-last").endswith(" ago")
    if not DOCS_SCREENSHOT.exists() or os.environ.get(UPDATE_DOCS_ENV):
        shutil.copyfile(shots / "overview.png", DOCS_SCREENSHOT)


def test_leaderboard_pages_filters_sorts_and_marks_the_lockbox(server, browser, shots) -> None:
    from selenium.webdriver.common.by import By

    visit(browser, server["url"] + "/ui/history?sort=dsr", shots, "leaderboard")
    rows = browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")
    assert len(rows) == 25 and "trend_rider" in rows[0].text  # best deflated Sharpe first
    header = browser.find_element(By.CSS_SELECTOR, "#leaderboard th.lockbox")
    assert header.text == "Lockbox return" and "never fed back to the loop" in header.get_attribute("title")
    assert text_of(browser, "#leaderboard tbody tr:first-child td.lockbox") == "3.5%"
    # The row links to its cycle; the second page holds the rest
    assert rows[0].find_element(By.TAG_NAME, "a").get_attribute("href").endswith(f"/ui/cycles/{server['best']}")
    browser.find_element(By.ID, "next-page").click()
    wait_for(lambda: "page=2" in browser.current_url, 10, "the second page")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")) == 5
    # The filters of `ktrdr agent history`: an unknown symbol matches nothing
    visit(browser, server["url"] + "/ui/history?symbol=GBPUSD&sort=created")
    assert "No finished cycle matches." in text_of(browser, "#leaderboard")


def test_cycle_page_shows_phases_gates_assessment_strategy_plots_and_artifacts(server, browser, shots) -> None:
    from selenium.webdriver.common.by import By

    visit(browser, f"{server['url']}/ui/cycles/{server['best']}", shots, "cycle")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#phases tbody tr")) == 4
    assert "training" in text_of(browser, "#phases") and "completed" in text_of(browser, "#phases")
    assert "Training gate: passed" in text_of(browser, "#gates")
    assert "promising" in text_of(browser, "#assessment") and "steady equity" in text_of(browser, "#assessment")
    assert "name: 'trend_rider'" in text_of(browser, "#strategy-yaml")
    assert "Lockbox" in text_of(browser, "#report")
    images = browser.find_elements(By.CSS_SELECTOR, "#plots img")
    assert images and all(browser.execute_script("return arguments[0].naturalWidth", i) > 0 for i in images)
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#artifacts a")]
    assert any(link.endswith("/report") for link in links) and any(link.endswith("/strategy.yaml") for link in links)
    visit(browser, f"{server['url']}/ui/cycles/{server['gated']}")
    assert "accuracy_below_threshold (35% < 45%)" in text_of(browser, "#gates")


def test_evidence_page_shows_the_series_and_the_calibration_power_curve(server, browser, shots) -> None:
    from selenium.webdriver.common.by import By

    visit(browser, server["url"] + "/ui/evidence", shots, "evidence")
    row = text_of(browser, "#evidence tbody tr")
    assert row.startswith("EURUSD 1h 30") and "trend_rider" in row
    assert len(browser.find_elements(By.CSS_SELECTOR, "#power tbody tr")) == 3
    curve = browser.find_element(By.ID, "power-curve")
    assert browser.execute_script("return arguments[0].naturalWidth", curve) > 0


def test_a_script_in_a_strategy_name_or_assessment_shows_as_text_and_never_runs(server, browser) -> None:
    for page in ("/ui/", "/ui/history?sort=created", f"/ui/cycles/{server['xss']}"):
        visit(browser, server["url"] + page)
        assert browser.execute_script("return window.__pwned") is None, page
        assert XSS_NAME in browser.find_element("tag name", "body").text, page
    assert XSS_VERDICT in text_of(browser, "#assessment")


def test_trigger_from_the_page_shows_the_phase_change_live_and_cancel_stops_the_cycle(server, browser, shots) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    # Given the overview, a cycle triggered from its form (offline designer, the bundled EURUSD series)
    visit(browser, server["url"] + "/ui/")
    Select(browser.find_element(By.ID, "series")).select_by_value("EURUSD 1h")
    Select(browser.find_element(By.ID, "designer")).select_by_value("offline")
    browser.find_element(By.ID, "trigger").click()
    wait_for(lambda: "triggered=" in browser.current_url, 20, "the trigger's redirect")
    cycle_id = text_of(browser, "#triggered a")
    browser.execute_script("window.__same_page = true")
    # When the live part refreshes, the cycle's phase moves on without a reload
    seen = {phase_of(browser, cycle_id)}
    wait_for(
        lambda: seen.add(phase_of(browser, cycle_id)) or ("training" in seen and len(seen - {""}) > 1),
        60,
        "a phase change",
    )
    assert browser.execute_script("return window.__same_page") is True
    browser.save_screenshot(str(shots / "overview-running.png"))
    # And a second trigger is refused with the API's own message and status (409) while it runs
    browser.find_element(By.ID, "trigger").click()
    wait_for(lambda: browser.find_elements(By.ID, "error"), 20, "the refusal")
    assert "research cycle(s) already active (limit 1)" in text_of(browser, "#error")
    assert problems(browser, allowed=("409",)) == []
    # Then cancel, from the running row, ends the cycle
    browser.find_element(By.CSS_SELECTOR, f"#running tr[data-cycle='{cycle_id}'] button.cancel").click()
    wait_for(lambda: f"/ui/cycles/{cycle_id}" in browser.current_url, 20, "the cycle's page")
    assert text_of(browser, "#cycle-status") == "cancelled"
    assert "Cancelled by user" in text_of(browser, "#cycle-error")
    assert problems(browser) == []
    browser.save_screenshot(str(shots / "cancelled.png"))


def phase_of(driver: Any, cycle_id: str) -> str:
    """The running row's phase now ("" while the live part is being swapped)."""
    from selenium.common.exceptions import WebDriverException

    try:
        return text_of(driver, f"#running tr[data-cycle='{cycle_id}'] td.phase")
    except WebDriverException:
        return ""


def test_an_action_without_its_csrf_token_is_refused(server, browser) -> None:
    cookie = browser.get_cookie("ktrdr_session")["value"]
    request = urllib.request.Request(
        server["url"] + "/ui/trigger", data=b"series=&designer=offline", method="POST",
        headers={"Cookie": f"ktrdr_session={cookie}", "Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403 and b"came from another site" in refused.value.read()


def test_without_a_token_pages_set_a_session_whose_csrf_token_actions_need_and_errors_match_the_api(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No browser: the app in process, without KTRDR_API_TOKEN."""
    import re

    from fastapi.testclient import TestClient

    from agent_pipeline.api.app import app
    from agent_pipeline.api.ui.pages.login import safe_next
    from agent_pipeline.config import reset_settings

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    reset_settings()
    with TestClient(app) as client:
        # Given a first visit: a strict, HttpOnly session cookie and the page's CSRF token
        page = client.get("/ui/")
        assert page.status_code == 200 and "HttpOnly" in page.headers["set-cookie"]
        assert "samesite=strict" in page.headers["set-cookie"].lower()
        assert "script-src 'self'" in page.headers["content-security-policy"]
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
        # An action without the token is refused; with it, the API's rule and message answer
        assert client.post("/ui/cycles/op_nope/cancel", data={"csrf": "0" * 64}).status_code == 403
        refused = client.post("/ui/cycles/op_nope/cancel", data={"csrf": csrf})
        api = client.delete("/api/v1/operations/op_nope")
        assert refused.status_code == api.status_code == 404 and api.json()["error"] in refused.text
        bad = "name: x\nsymbol: EURUSD\n"
        shown = client.post("/ui/trigger", data={"csrf": csrf}, files={"strategy_file": ("s.yaml", bad.encode())})
        api = client.post("/api/v1/agent/trigger", json={"strategy": bad})
        assert shown.status_code == api.status_code == 422
        assert html_unescape(api.json()["error"]).split(";")[0] in html_unescape(shown.text)
    assert [safe_next(t) for t in ("/ui/history", "//evil.example", "https://evil.example", "/ui/\\\\evil")] == [
        "/ui/history", "/ui/", "/ui/", "/ui/",
    ]  # fmt: skip


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


def test_the_trigger_form_offers_each_universe_in_both_modes_and_triggers_it_as_the_api_does(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No browser: the app in process. The form's universe choice reaches the same checks as the API's body."""
    import re

    from fastapi.testclient import TestClient

    from agent_pipeline.api.app import app
    from agent_pipeline.config import reset_settings

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    reset_settings()
    with TestClient(app) as client:
        # Given the overview: the bundled SP500_20 is offered, timing and rank, beside the series
        page = client.get("/ui/")
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)  # type: ignore[union-attr]
        assert '<option value="universe SP500_20 1d timing">SP500_20 1d timing</option>' in page.text
        assert '<option value="universe SP500_20 1d rank">SP500_20 1d rank</option>' in page.text
        # When a universe choice is sent with another timeframe, or a mode the form never offers
        wrong = client.post("/ui/trigger", data={"csrf": csrf, "series": "universe SP500_20 1h rank"})
        api = client.post("/api/v1/agent/trigger", json={"universe": "SP500_20", "timeframe": "1h"})
        tampered = client.post("/ui/trigger", data={"csrf": csrf, "series": "universe SP500_20 1d short"})
    # Then each is refused with the API's status and message, and no cycle was created
    assert wrong.status_code == api.status_code == 400
    assert "universe SP500_20 is 1d, not 1h" in wrong.text and api.json()["error"] == "universe SP500_20 is 1d, not 1h"
    assert tampered.status_code == 400 and "a universe choice is `universe NAME TIMEFRAME timing|rank`" in tampered.text
