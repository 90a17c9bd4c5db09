"""The built documentation site in a real browser (headless Chromium from Debian, driven by
Selenium through Debian's chromedriver): every page loads without console errors,
navigation reaches every step, every step page links to the previous and next page and
opens its diagrams with the legend, code blocks and diagrams render, search finds "deadlock",
and the API reference loads from the site's own links and links back; the site opened from
disk (file://) navigates and styles its pages and says that search needs a server; the 404
page, built for a sub-path, is styled and links home there. Screenshots of the home page and
of one step page are saved as artifacts.

Environment: GILONCE_SITE (the built site; default build/site), GILONCE_ARTIFACTS (where
screenshots go; default build/docs/screenshots)."""
import functools
import http.server
import os
import pathlib
import subprocess
import sys
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


def url_of(name):
    """The URL path of a page, relative to the site: pages are files (use_directory_urls: false)."""
    return f"{name}.html"


def step_pages():
    """Every page of the walkthrough in reading order: each step, its details page where the
    step has one (walkthroughs/<step>/details.md), then its scenarios page."""
    pages = []
    for step in STEPS:
        pages.append(url_of(f"walkthroughs/{step}"))
        if (ROOT / "walkthroughs" / step / "details.md").is_file():
            pages.append(url_of(f"walkthroughs/{step}-details"))
        pages.append(url_of(f"walkthroughs/{step}-scenarios"))
    return pages


def serve(directory, not_found=None):
    """Serve `directory` on a free port; with `not_found`, answer a missing path with that
    file's content and status 404, as a static host does with 404.html."""
    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send_error(self, code, message=None, explain=None):
            if code != 404 or not_found is None:
                return super().send_error(code, message, explain)
            body = not_found.read_bytes()
            self.send_response(404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def console_errors(driver):
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def site_pages():
    pages = [p for p in SITE.rglob("*.html")
             if not {"_generated", "api"} & set(p.relative_to(SITE).parts) and p.name != "404.html"]
    pages += [SITE / "api" / name for name in ("index.html", "genindex.html", "search.html")]
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
        link = browser.find_element(By.CSS_SELECTOR, f'nav a[href$="walkthroughs/{step}.html"]')
        browser.execute_script("arguments[0].click()", link)
        WebDriverWait(browser, 10).until(EC.url_contains(f"walkthroughs/{step}.html"))
        heading = browser.find_element(By.TAG_NAME, "h1").text
        assert heading.startswith(f"Step 0{number}"), heading


def test_code_blocks_and_diagrams_render_on_every_step_page(browser, base_url):
    # A step page draws the step in one picture; its scenarios page draws every scenario.
    for step in STEPS:
        browser.get(f"{base_url}/{url_of(f'walkthroughs/{step}')}")
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
    pages = [url_of("reading-the-code"), *step_pages(), url_of("concepts")]
    for before, page, after in zip(pages, pages[1:], pages[2:]):
        browser.get(f"{base_url}/{page}")
        prev = browser.find_element(By.CSS_SELECTOR, "a.md-footer__link--prev").get_attribute("href")
        nxt = browser.find_element(By.CSS_SELECTOR, "a.md-footer__link--next").get_attribute("href")
        assert prev == f"{base_url}/{before}", (page, prev)
        assert nxt == f"{base_url}/{after}", (page, nxt)


def test_every_scenarios_page_shows_the_diagram_legend_before_its_diagrams(browser, base_url):
    for step in STEPS:
        browser.get(f"{base_url}/{url_of(f'walkthroughs/{step}-scenarios')}")
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
    # A note on a subject (an interpreter, a cell) has a line of its own, and its subject a lifeline.
    assert mermaid.NOTE_ON not in arrows.values()
    assert f"{mermaid.NOTE_ON}r_a_subject: what it did to a subject" in source
    assert "participant r_a_subject as a subject" in source


def test_no_listing_scrolls_sideways_at_the_default_width(browser, base_url):
    # The browser window is 1280 px wide (the fixture), a common laptop width.
    pages = [url_of(f"walkthroughs/{step}") for step in STEPS] + [url_of(name) for name in ("reading-the-code", "concepts", "faq", "reference")]
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
    browser.get(f"{base_url}/{url_of('reference')}")
    link = browser.find_element(By.CSS_SELECTOR, 'article a[href$="api/index.html"]')
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
    for name, url in (("home.png", "/"), ("step-02.png", "/" + url_of("walkthroughs/02-lock-that-deadlocks"))):
        browser.get(base_url + url)
        path = ARTIFACTS / name
        assert browser.save_screenshot(str(path))
        assert path.stat().st_size > 10_000


def styled(browser):
    """Whether the theme's stylesheet applied: its header is sticky and coloured (unstyled, it
    is a static element with a transparent background). Read from computed styles, which
    file:// pages expose, unlike their stylesheets' rules."""
    position, background = browser.execute_script(
        "const s = getComputedStyle(document.querySelector('.md-header')); return [s.position, s.backgroundColor]")
    return position == "sticky" and background not in ("transparent", "rgba(0, 0, 0, 0)")


def test_the_site_opened_from_disk_navigates_and_says_search_needs_a_server(browser):
    browser.get((SITE / "index.html").resolve().as_uri())
    assert styled(browser)
    link = browser.find_element(By.CSS_SELECTOR, 'nav a[href$="walkthroughs/02-lock-that-deadlocks.html"]')
    browser.execute_script("arguments[0].click()", link)
    WebDriverWait(browser, 10).until(EC.url_contains("02-lock-that-deadlocks.html"))
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Step 02")
    assert styled(browser)
    pages = step_pages()
    after = pages[pages.index(url_of("walkthroughs/02-lock-that-deadlocks")) + 1]
    nxt = browser.find_element(By.CSS_SELECTOR, "a.md-footer__link--next")
    browser.execute_script("arguments[0].click()", nxt)
    WebDriverWait(browser, 10).until(EC.url_contains(after))
    assert styled(browser)
    browser.get((SITE / url_of("walkthroughs/02-lock-that-deadlocks-scenarios")).resolve().as_uri())
    assert browser.find_elements(By.CSS_SELECTOR, 'img[src*="_generated/diagrams"]')
    box = browser.find_element(By.CSS_SELECTOR, "input.md-search__input")
    assert "python3 -m http.server" in box.get_attribute("placeholder")


def test_the_404_page_built_for_a_sub_path_is_styled_and_links_home(browser, tmp_path):
    # A static host shows 404.html for a missing path at any depth, so its links are absolute:
    # built with GILONCE_SITE_URL naming the sub-path, they must resolve under it.
    built = tmp_path / "gilonce"
    env = dict(os.environ, GILONCE_SITE_URL="https://example.invalid/gilonce/", NO_MKDOCS_2_WARNING="1")
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f", str(ROOT / "mkdocs.yml"),
                    "-d", str(built)], cwd=ROOT, env=env, check=True)
    server = serve(tmp_path, not_found=built / "404.html")
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        browser.get(f"{base}/gilonce/walkthroughs/no-such-step/page.html")
        assert "404" in browser.find_element(By.TAG_NAME, "h1").text
        assert styled(browser)
        home = browser.find_element(By.CSS_SELECTOR, "a.md-header__button.md-logo").get_attribute("href")
        assert home == f"{base}/gilonce/index.html", home
        browser.get(home)
        assert browser.find_element(By.TAG_NAME, "h1").text.startswith("gilonce")
    finally:
        server.shutdown()


def test_every_local_link_of_the_site_lands_on_a_file():
    # Every href and src of every page (the API reference's included) that is not a web
    # address must name a file of the built site, so no link opens a directory listing or a
    # missing page, from disk or from a server. The 404 page's links are absolute (above).
    from html.parser import HTMLParser
    from urllib.parse import unquote, urlsplit

    class Links(HTMLParser):
        def __init__(self):
            super().__init__()
            self.found = []

        def handle_starttag(self, tag, attrs):
            for name, value in attrs:
                if name in ("href", "src") and value:
                    self.found.append(value)

    broken = []
    pages = [p for p in SITE.rglob("*.html") if p.name != "404.html"]
    assert len(pages) >= 20
    for path in pages:
        parser = Links()
        parser.feed(path.read_text(errors="replace"))
        for link in parser.found:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or not parts.path:
                continue  # a web address, or an anchor on the same page
            target = (path.parent / unquote(parts.path)).resolve()
            if not target.is_file():
                broken.append(f"{path.relative_to(SITE)}: {link}")
    assert broken == [], "\n".join(broken[:40])
