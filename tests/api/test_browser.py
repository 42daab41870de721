"""The chat page end to end in headless Chromium (Debian's `chromium` + `chromium-driver`, driven by
selenium), against a real `docent serve` whose model is a scripted OpenAI-compatible server streaming one
word at a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pypdf
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from ingest.fetch import GENERIC_REFUSAL
from tests.helpers import SAMPLE_CORPUS, create_key, docent_env, docent_server, run_docent
from tests.model_servers import ModelScript, openai_app, serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)
QUESTION = "How hot should a compost pile get?"
FOLLOW_UP = "And how often should it be turned?"
MODEL = "gpt-4o-mini"
WAIT_S = 60

T = TypeVar("T")

# Records, from inside the page, the length of the newest answer each time the conversation changes, and
# whether that answer was finished (its model line shown) at that moment.
WATCH_ANSWER = """
window.__answerLengths = [];
const box = document.querySelector('[data-testid="messages"]');
new MutationObserver(() => {
  const bubbles = box.querySelectorAll('[data-testid="assistant-message"]');
  const last = bubbles[bubbles.length - 1];
  if (!last) return;
  const text = last.querySelector('[data-testid="answer-text"]').textContent;
  const finished = last.querySelector('[data-testid="answer-model"]') !== null;
  window.__answerLengths.push([text.length, finished]);
}).observe(box, {childList: true, subtree: true, characterData: true});
"""


@dataclass
class ChatServer:
    base: str
    key: str
    script: ModelScript
    ingest_key: str


@pytest.fixture
def chat_server(tmp_path: Path) -> Iterator[ChatServer]:
    """Docent over the sample corpus, with one `query` key, answering through a scripted streaming model."""
    require_chromium()  # before the slow set-up
    data_dir = tmp_path / "data"
    env = docent_env(data_dir)
    done = run_docent(["ingest", str(SAMPLE_CORPUS), "--json"], env)
    assert done.returncode == 0, done.stderr
    key = create_key(data_dir, "browser", "query")
    ingest_key = create_key(data_dir, "loader", "query,ingest")
    script = ModelScript(token_delay_s=0.08)  # 13 words, one per chunk: the answer takes about a second
    with serving(openai_app(script)) as openai_base:
        model_env = {
            "DOCENT_AUTH": "on",
            "DOCENT_LLM_PROVIDER": "openai",
            "DOCENT_OPENAI_BASE_URL": f"{openai_base}/v1",
            "DOCENT_LLM_MODEL": MODEL,
            "DOCENT_LLM_FALLBACKS": "extractive",
            "DOCENT_LLM_TIMEOUT_S": "10",
            "DOCENT_LLM_MAX_RETRIES": "0",  # a scripted 500 goes straight to the extractive fallback
        }
        with docent_server(data_dir, tmp_path / "server.log", **model_env) as base:
            yield ChatServer(base, key, script, ingest_key)


def require_chromium() -> None:
    """Fail (never skip) when Debian's browser packages are missing: CI installs them."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: install Debian's browser packages with "
            "`apt-get install -y chromium chromium-driver` (.ci/run does this)",
            pytrace=False,
        )


def chromium_driver(workdir: Path) -> webdriver.Chrome:
    """Headless Chromium from Debian's packages, driven through chromedriver."""
    require_chromium()
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(workdir / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(WAIT_S)
    return driver


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], T | None], what: str) -> T:
    """Poll condition until it returns something truthy; fail naming `what`."""
    ignored = (StaleElementReferenceException,)  # the thread list is re-rendered while we poll
    wait = WebDriverWait(driver, WAIT_S, poll_frequency=0.05, ignored_exceptions=ignored)
    try:
        found = wait.until(condition, what)
    except TimeoutException as exc:
        raise AssertionError(f"timed out waiting for {what}") from exc
    assert found is not None
    return found


def by_testid(scope: WebDriver | WebElement, testid: str) -> list[WebElement]:
    return scope.find_elements(By.CSS_SELECTOR, f'[data-testid="{testid}"]')


def visible_text(driver: WebDriver, testid: str) -> str:
    found = [e for e in by_testid(driver, testid) if e.is_displayed()]
    return found[0].text if found else ""


def save_key(driver: WebDriver, key: str) -> None:
    field = by_testid(driver, "api-key")[0]
    field.clear()
    field.send_keys(key)
    by_testid(driver, "save-key")[0].click()


def last_answer(driver: WebDriver) -> WebElement | None:
    bubbles = by_testid(driver, "assistant-message")
    return bubbles[-1] if bubbles else None


def finished_answer(driver: WebDriver) -> WebElement | None:
    """The newest assistant message once its model line (shown at the `end` event) is there."""
    bubble = last_answer(driver)
    return bubble if bubble is not None and by_testid(bubble, "answer-model") else None


def thread_item(driver: WebDriver, thread_id: str) -> WebElement | None:
    for item in by_testid(driver, "thread-item"):
        if item.get_attribute("data-thread-id") == thread_id:
            return item
    return None


def thread_text(driver: WebDriver, thread_id: str) -> str:
    item = thread_item(driver, thread_id)
    return item.text if item is not None else ""


def downloaded(directory: Path, name: str) -> Callable[[WebDriver], Path | None]:
    def check(_driver: WebDriver) -> Path | None:
        path = directory / name
        return path if path.is_file() and path.stat().st_size > 0 else None

    return check


def test_chat_page_streams_an_answer_with_citations_and_keeps_the_thread(
    chat_server: ChatServer, tmp_path: Path
) -> None:
    driver = chromium_driver(tmp_path)
    try:
        run_chat(driver, chat_server, tmp_path)
    except BaseException as exc:
        driver.save_screenshot(str(tmp_path / "failure.png"))
        logs: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
        exc.add_note(f"browser console: {json.dumps(logs)[-3000:]}")
        raise
    finally:
        driver.quit()


def run_chat(driver: WebDriver, server: ChatServer, tmp_path: Path) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    behavior = {"behavior": "allow", "downloadPath": str(downloads)}
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", behavior)

    # The page and its files are public (no key), served as they are, with a strict content policy.
    page = httpx.get(f"{server.base}/", timeout=10)
    assert page.status_code == 200, f"GET / answered {page.status_code}: is api.routes.ui.install_ui called?"
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("app.js", "app.css"):
        assert httpx.get(f"{server.base}/static/{name}", timeout=10).status_code == 200, name

    # Without a key the page asks for one.
    driver.get(f"{server.base}/")
    wait_for(driver, lambda d: "Enter an API key" in visible_text(d, "threads-status"), "the key prompt")
    assert visible_text(driver, "key-status") == "No key saved"

    # A wrong key: the thread list's 401 shows in the error bar.
    save_key(driver, "dk_not-a-real-key")
    wait_for(driver, lambda d: by_testid(d, "error-bar")[0].is_displayed(), "the error bar")
    error = by_testid(driver, "error-text")[0].text
    assert error.startswith("Unauthorized (401)") and "unknown API key" in error, error

    # The right key clears it; this key has no threads yet.
    save_key(driver, server.key)
    wait_for(driver, lambda d: visible_text(d, "threads-status") == "No threads yet.", "an empty thread list")
    assert not by_testid(driver, "error-bar")[0].is_displayed()
    assert visible_text(driver, "key-status") == "Key saved in this browser"
    assert not by_testid(driver, "ingest-panel")[0].is_displayed()  # a `query` key cannot add documents

    # Ask with the keyboard (Enter sends) and watch the answer grow from inside the page.
    driver.execute_script(WATCH_ANSWER)
    box = by_testid(driver, "question")[0]
    box.send_keys(QUESTION)
    box.send_keys(Keys.ENTER)
    bubble = wait_for(driver, finished_answer, "the finished answer")
    answer = by_testid(bubble, "answer-text")[0].text
    lengths: list[list[Any]] = driver.execute_script("return window.__answerLengths")
    partial = {length for length, finished in lengths if not finished and 0 < length < len(answer)}
    assert len(partial) >= 2, f"the answer did not stream: lengths seen {lengths}, final {len(answer)}"
    tokens = driver.execute_script("return window.__docentTokens")
    assert tokens >= len(partial), tokens
    assert server.script.finished_streams == 1 and len(server.script.chat_requests) == 1
    assert answer.endswith("[1]"), answer  # the scripted model quotes passage 1 and cites it
    assert by_testid(driver, "user-text")[-1].text == QUESTION
    assert by_testid(driver, "question")[0].get_attribute("value") == ""

    sample_files = {p.name for p in SAMPLE_CORPUS.iterdir()}
    citations = by_testid(bubble, "citation")
    assert citations, "no citation shown"
    source = by_testid(citations[0], "citation-source")[0].text
    assert source in sample_files, source
    assert citations[0].text.startswith("[1]")
    assert by_testid(bubble, "answer-model")[0].text == f"Model: openai/{MODEL}"
    usage = by_testid(bubble, "answer-usage")[0].text
    assert "tokens" in usage and "estimated" not in usage, usage
    assert by_testid(bubble, "answer-cost")[0].text.startswith("Cost: $"), "a priced model's cost in USD"
    assert not by_testid(bubble, "degraded")

    thread_id = by_testid(driver, "conversation")[0].get_attribute("data-thread-id")
    assert thread_id
    assert by_testid(driver, "thread-title")[0].text == QUESTION
    wait_for(driver, lambda d: thread_item(d, thread_id), "the new thread in the list")
    driver.save_screenshot(str(tmp_path / "answer.png"))

    # Export: the button fetches with the key and saves the file through a blob URL.
    by_testid(driver, "export-json")[0].click()
    exported = wait_for(driver, downloaded(downloads, f"docent-thread-{thread_id}.json"), "the JSON export")
    body = json.loads(exported.read_text(encoding="utf-8"))
    assert body["id"] == thread_id
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]
    assert body["messages"][0]["content"] == QUESTION and body["messages"][1]["content"] == answer

    # After a reload the key is remembered and the thread is listed; clicking it shows its history.
    driver.refresh()
    item = wait_for(driver, lambda d: thread_item(d, thread_id), "the thread after a reload")
    assert visible_text(driver, "key-status") == "Key saved in this browser"
    assert by_testid(item, "thread-name")[0].text == QUESTION
    assert "1 turn" in item.text
    assert not by_testid(driver, "assistant-message")
    item.click()
    restored = wait_for(driver, finished_answer, "the thread's history")
    assert by_testid(driver, "user-text")[0].text == QUESTION
    assert by_testid(restored, "answer-text")[0].text == answer
    assert by_testid(by_testid(restored, "citation")[0], "citation-source")[0].text == source
    assert by_testid(restored, "answer-model")[0].text == f"Model: openai/{MODEL}"
    assert by_testid(driver, "conversation")[0].get_attribute("data-thread-id") == thread_id
    assert item.get_attribute("aria-current") == "true"

    # One model call so far (the history came from the records), and no stream was cut short.
    assert server.script.cancelled_streams == 0 and len(server.script.chat_requests) == 1

    # Shift+Enter adds a line and sends nothing.
    box = by_testid(driver, "question")[0]
    box.send_keys("first line", Keys.SHIFT, Keys.ENTER, Keys.SHIFT, "second line")
    assert box.get_attribute("value") == "first line\nsecond line"
    assert len(by_testid(driver, "user-message")) == 1
    box.clear()

    # A follow-up on the same thread while the model fails: the fallback answers, marked degraded.
    server.script.faults.append("500")
    box.send_keys(FOLLOW_UP, Keys.ENTER)
    wait_for(driver, lambda d: len(by_testid(d, "assistant-message")) == 2, "the follow-up's answer")
    fallback = wait_for(driver, finished_answer, "the follow-up's finished answer")
    assert by_testid(fallback, "answer-model")[0].text == "Model: extractive"
    assert by_testid(fallback, "degraded")[0].is_displayed()
    reason = by_testid(fallback, "degraded-reason")[0].text
    assert f"openai/{MODEL}" in reason and "500" in reason, reason
    assert by_testid(fallback, "answer-cost")[0].text == "Cost: free"
    assert by_testid(fallback, "citation"), "the fallback answer cites its passages"
    assert by_testid(driver, "conversation")[0].get_attribute("data-thread-id") == thread_id
    wait_for(driver, lambda d: "2 turns" in thread_text(d, thread_id), "2 turns in the thread list")

    screenshot = tmp_path / "chat.png"
    assert driver.save_screenshot(str(screenshot))
    assert screenshot.read_bytes().startswith(b"\x89PNG"), "the screenshot is not a PNG"
    assert not by_testid(driver, "error-bar")[0].is_displayed(), visible_text(driver, "error-bar")

    add_documents(driver, server, tmp_path)


# Drops one file on an element, as a browser does when a file is dragged from the desktop onto it.
DROP_FILE = """
const [zone, name, text] = arguments;
const transfer = new DataTransfer();
transfer.items.add(new File([text], name, {type: "text/markdown"}));
for (const type of ["dragenter", "dragover", "drop"]) {
  zone.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: transfer}));
}
"""


def add_documents(driver: WebDriver, server: ChatServer, tmp_path: Path) -> None:
    """A key with the `ingest` scope picks files, drops one, pastes a URL, and follows the job's results."""
    save_key(driver, server.ingest_key)
    panel = wait_for(driver, lambda d: by_testid(d, "ingest-panel")[0].is_displayed(), "the upload panel")
    assert panel
    notes = tmp_path / "radiators.txt"
    notes.write_text("Bleed radiators every autumn so that trapped air does not keep them cold at the top.\n")
    excerpt = tmp_path / "excerpt.pdf"  # two pages of the sample guide: new bytes, so a new source
    writer = pypdf.PdfWriter()
    for page in pypdf.PdfReader(SAMPLE_CORPUS / "compost-field-guide.pdf").pages[:2]:
        writer.add_page(page)
    writer.write(excerpt)
    copy = tmp_path / "guide-copy.pdf"  # the same bytes as the ingested sample: not stored twice
    copy.write_bytes((SAMPLE_CORPUS / "compost-field-guide.pdf").read_bytes())
    by_testid(driver, "ingest-files")[0].send_keys("\n".join(str(p) for p in (notes, excerpt, copy)))
    dropped = "# Heat pumps\n\nA heat pump moves heat from the outside air into the house.\n"
    driver.execute_script(DROP_FILE, by_testid(driver, "drop-zone")[0], "heat-pumps.md", dropped)
    names = {"radiators.txt", "excerpt.pdf", "guide-copy.pdf", "heat-pumps.md"}
    wait_for(driver, lambda d: {e.text for e in by_testid(d, "selected-name")} == names, "the chosen files")
    refused = "http://127.0.0.1:9/intranet-page"  # loopback: the server refuses to fetch it
    by_testid(driver, "ingest-urls")[0].send_keys(refused)
    by_testid(driver, "ingest-submit")[0].click()
    job = by_testid(driver, "ingest-job")[0]
    wait_for(driver, lambda d: job.get_attribute("data-status") == "done", "the ingest job's end")
    assert visible_text(driver, "ingest-status") == "Done: 3 added, 1 duplicate, 1 failed."
    assert by_testid(driver, "ingest-progress")[0].get_attribute("value") == "5"
    results = {by_testid(item, "result-source")[0].text: item for item in by_testid(driver, "ingest-result")}
    assert set(results) == names | {refused}
    assert {name: item.get_attribute("data-status") for name, item in results.items()} == {
        "radiators.txt": "added",
        "excerpt.pdf": "added",
        "heat-pumps.md": "added",
        "guide-copy.pdf": "duplicate",
        refused: "failed",
    }
    report = by_testid(results["excerpt.pdf"], "result-report")[0].text
    assert report.startswith("2 pages · ") and report.endswith(" characters/page · 0 tables"), report
    assert by_testid(results["radiators.txt"], "result-chunks")[0].text == "· 1 chunk"
    same = by_testid(results["guide-copy.pdf"], "result-reason")[0].text
    assert same == "same content as data/sample/compost-field-guide.pdf", same
    assert by_testid(results[refused], "result-reason")[0].text == GENERIC_REFUSAL
    assert not by_testid(driver, "selected-file"), "the sent files are cleared from the form"
    assert not by_testid(driver, "error-bar")[0].is_displayed(), visible_text(driver, "error-bar")
    driver.save_screenshot(str(tmp_path / "ingest.png"))
