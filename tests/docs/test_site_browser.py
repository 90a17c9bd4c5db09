"""The built documentation site in a real browser (headless Chromium from Debian, driven by
Selenium through Debian's chromedriver): every page loads without console errors,
navigation reaches every step, every step page links to the previous and next page and
opens its diagrams with the legend, code blocks and diagrams render, search finds "deadlock",
and the API reference loads from the site's own links and links back. Screenshots of the
home page and of one step page are saved as artifacts.

Environment: GILONCE_SITE (the built site; default build/site), GILONCE_ARTIFACTS (where
screenshots go; default build/docs/screenshots)."""
import functools
import http.server
import os
import pathlib
import threading

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

ROOT = pathlib.Path(__file__).resolve().parents[2]
SITE = pathlib.Path(os.environ.get("GILONCE_SITE", ROOT / "build" / "site"))
ARTIFACTS = pathlib.Path(os.environ.get("GILONCE_ARTIFACTS", ROOT / "build" / "docs" / "screenshots"))
STEPS = ["01-unsound-lazy-type", "02-lock-that-deadlocks", "03-gil-as-the-lock",
         "04-recursive-class-attributes", "05-two-stage-initialization", "06-many-interpreters",
         "07-no-gil"]


@pytest.fixture(scope="module")
def base_url():
    if not (SITE / "index.html").is_file():
        pytest.fail(f"no built site at {SITE}: run tools/docs first")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(SITE)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1800", "--disable-extensions", "--no-first-run"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def console_errors(driver):
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def site_pages():
    pages = [p for p in SITE.rglob("index.html") if "_generated" not in p.parts]
    pages += [SITE / "api" / name for name in ("genindex.html", "search.html")]
    return sorted(str(p.relative_to(SITE)) for p in pages)


def test_every_page_loads_without_console_errors(browser, base_url):
    pages = site_pages()
    assert len(pages) >= 10
    failures = {}
    for page in pages:
        browser.get(f"{base_url}/{page}")
        WebDriverWait(browser, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")
        errors = console_errors(browser)
        if errors:
            failures[page] = errors
        assert browser.find_elements(By.TAG_NAME, "h1"), f"{page} has no heading"
    assert failures == {}


def test_navigation_reaches_every_step_from_the_home_page(browser, base_url):
    for number, step in enumerate(STEPS, start=1):
        browser.get(f"{base_url}/")
        link = browser.find_element(By.CSS_SELECTOR, f'nav a[href$="walkthroughs/{step}/"]')
        browser.execute_script("arguments[0].click()", link)
        WebDriverWait(browser, 10).until(EC.url_contains(f"walkthroughs/{step}/"))
        heading = browser.find_element(By.TAG_NAME, "h1").text
        assert heading.startswith(f"Step 0{number}"), heading


def test_code_blocks_and_diagrams_render_on_every_step_page(browser, base_url):
    for step in STEPS:
        browser.get(f"{base_url}/walkthroughs/{step}/")
        code = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "pre code") if c.text.strip()]
        assert len(code) >= 2, f"{step}: too few code blocks"
        assert not any("--8<--" in c for c in code), f"{step}: an include was not expanded"
        diagrams = browser.find_elements(By.CSS_SELECTOR, 'img[src*="_generated/diagrams"]')
        assert diagrams, f"{step}: no diagrams"
        for img in diagrams:
            WebDriverWait(browser, 10).until(lambda d: d.execute_script("return arguments[0].complete", img))
            width = browser.execute_script("return arguments[0].naturalWidth", img)
            assert width > 0, f"{step}: diagram {img.get_attribute('src')} did not load"


def test_every_step_page_links_to_the_previous_and_next_page(browser, base_url):
    pages = ["reading-the-code/", *[f"walkthroughs/{step}/" for step in STEPS], "concepts/"]
    for before, page, after in zip(pages, pages[1:], pages[2:]):
        browser.get(f"{base_url}/{page}")
        prev = browser.find_element(By.CSS_SELECTOR, "a.md-footer__link--prev").get_attribute("href")
        nxt = browser.find_element(By.CSS_SELECTOR, "a.md-footer__link--next").get_attribute("href")
        assert prev == f"{base_url}/{before}", (page, prev)
        assert nxt == f"{base_url}/{after}", (page, nxt)


def test_every_step_page_shows_the_diagram_legend_before_its_diagrams(browser, base_url):
    for step in STEPS:
        browser.get(f"{base_url}/walkthroughs/{step}/")
        images = browser.find_elements(By.CSS_SELECTOR, 'img[src*="_generated/diagrams"]')
        assert images and images[0].get_attribute("src").endswith("_generated/diagrams/legend.svg"), step
        WebDriverWait(browser, 10).until(lambda d: d.execute_script("return arguments[0].complete", images[0]))
        assert browser.execute_script("return arguments[0].naturalWidth", images[0]) > 0, step


def test_the_legend_draws_each_kind_of_event_its_own_way():
    # The legend is the renderer's own output for one event of each kind.
    import sys
    sys.path.insert(0, str(ROOT / "walkthroughs" / "runner"))
    import mermaid
    source = mermaid.render(mermaid.LEGEND)
    arrows = {kind: arrow for kind, (arrow, _, _) in mermaid.ARROWS.items()}
    assert len(set(arrows.values())) == len(arrows), "two kinds of event share an arrow"
    for kind, (arrow, verb, _) in mermaid.ARROWS.items():
        assert f"{arrow}" in source and verb in source, kind


def test_no_listing_scrolls_sideways_at_the_default_width(browser, base_url):
    # The browser window is 1280 px wide (the fixture), a common laptop width.
    pages = [f"walkthroughs/{step}/" for step in STEPS] + ["reading-the-code/", "concepts/", "faq/", "reference/"]
    wide = []
    for page in pages:
        browser.get(f"{base_url}/{page}")
        for block in browser.find_elements(By.CSS_SELECTOR, "pre > code"):
            scroll, client = browser.execute_script("return [arguments[0].scrollWidth, arguments[0].clientWidth]", block)
            if scroll > client + 2:
                wide.append(f"{page}: {block.text.splitlines()[0][:60]!r} ({scroll} px in {client} px)")
    assert wide == [], "\n".join(wide)


def search_results_once_settled(browser, timeout=20):
    """The search results' texts, read in one step once two reads 300 ms apart agree: the
    results list re-renders while the search index loads, and an element found before a
    re-render is stale after it."""
    read = "return Array.from(document.querySelectorAll('.md-search-result__item')).map(e => e.innerText)"
    previous = None

    def settled(driver):
        nonlocal previous
        current = driver.execute_script(read)
        stable = bool(current) and current == previous
        previous = current
        return current if stable else False

    return WebDriverWait(browser, timeout, poll_frequency=0.3).until(settled)


def test_search_finds_deadlock(browser, base_url):
    browser.get(f"{base_url}/")
    browser.find_element(By.CSS_SELECTOR, "label.md-search__icon, .md-search__input").click()
    box = WebDriverWait(browser, 10).until(EC.element_to_be_clickable((By.CSS_SELECTOR, "input.md-search__input")))
    box.send_keys("deadlock")
    results = search_results_once_settled(browser)
    assert len(results) >= 3
    assert any("deadlock" in text.lower() for text in results)


def test_api_reference_loads_from_the_site_and_links_back(browser, base_url):
    browser.get(f"{base_url}/reference/")
    # mkdocs rewrites the Markdown link api/index.html to the folder URL ../api/
    link = browser.find_element(By.CSS_SELECTOR, 'article a[href$="api/"]')
    browser.execute_script("arguments[0].click()", link)
    WebDriverWait(browser, 10).until(EC.url_contains("/api/"))
    assert "gilonce API reference" in browser.title
    body = browser.find_element(By.TAG_NAME, "body").text
    for entity in ("gil_once_cell", "lazy_type", "gil_token", "py_ref", "class_attribute", "reentrant_init_error"):
        assert entity in body, f"{entity} missing from the API reference"
    back = browser.find_element(By.LINK_TEXT, "Back to the course")
    browser.execute_script("arguments[0].click()", back)
    WebDriverWait(browser, 10).until(lambda d: d.current_url.rstrip("/").endswith(base_url.split("//")[1]) or
                                     d.current_url.endswith("/index.html"))
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("gilonce")
    assert console_errors(browser) == []


def test_screenshots_of_home_and_a_step_page(browser, base_url):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, url in (("home.png", "/"), ("step-02.png", "/walkthroughs/02-lock-that-deadlocks/")):
        browser.get(base_url + url)
        path = ARTIFACTS / name
        assert browser.save_screenshot(str(path))
        assert path.stat().st_size > 10_000
