"""Browser test of the built book (_build/html), as a reader would see it.

Run `make book` first (`make test` does). Every page listed in _toc.yml is
opened in headless Chromium (Debian's /usr/bin/chromium and
/usr/bin/chromedriver, installed by `make test` as root) from a local HTTP server,
and one page also over file://. For each page we check that

- MathJax typeset every equation, without errors and without leftover raw TeX;
- every image loaded;
- every internal link points at an existing file, and its #anchor exists;
- nothing was loaded from another host (the book must work offline).

A screenshot of SCREENSHOT_PAGE is saved to _build/screenshot.png, and copied
to book/images/screenshot.png when UPDATE_SCREENSHOT=1.
"""

import functools
import html.parser
import http.server
import os
import posixpath
import re
import shutil
import threading
import urllib.parse
from pathlib import Path

import pytest
import yaml
from selenium.webdriver.support.ui import WebDriverWait

import chromium

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
TOC = ROOT / "_toc.yml"

# A page full of equations, opened straight from disk by the file:// test.
MATH_PAGE = "book/notation.html"
# The view shown in the README: the post's published OBD curve beside the two reruns.
SCREENSHOT_PAGE = "notebooks/08_side_by_side.html#obd-all-layers"
SCREENSHOT = ROOT / "_build" / "screenshot.png"
SCREENSHOT_COPY = ROOT / "book" / "images" / "screenshot.png"

MATHJAX_TIMEOUT_S = 30

# Console errors that are not the book's fault: Chromium asks every server for
# /favicon.ico, and the pydata theme complains once when a fresh profile has
# no stored light/dark mode (it then falls back to "auto").
HARMLESS_CONSOLE_ERRORS = re.compile(r"/favicon\.ico |Got invalid theme mode: \.")


# ---------------------------------------------------------------- the toc


def toc_files() -> list[str]:
    """All documents listed in _toc.yml (root first), without extension."""
    toc = yaml.safe_load(TOC.read_text())
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return [str(Path(f).with_suffix("")) for f in files]


TOC_PAGES = [f + ".html" for f in toc_files()]


def test_every_notebook_is_in_the_toc():
    listed = set(toc_files())
    notebooks = sorted(p.relative_to(ROOT).with_suffix("").as_posix() for p in (ROOT / "notebooks").glob("*.ipynb"))
    missing = [nb for nb in notebooks if nb not in listed]
    assert not missing, f"Notebooks not listed in _toc.yml (so not published): {missing}"


# ---------------------------------------------------------------- the build


@pytest.fixture(scope="module")
def built():
    index = HTML / "index.html"
    if not index.is_file():
        pytest.fail(f"{index.relative_to(ROOT)} not found: build the book first with `make book`.")
    return HTML


def test_mathjax_is_bundled(built):
    assert (built / "_static" / "mathjax" / "es5" / "tex-chtml.js").is_file(), (
        "MathJax is not in _build/html/_static/mathjax/: `make book` copies it (scripts/copy_mathjax.py)."
    )


EXTERNAL_RESOURCE = re.compile(
    r"<(?:script|img|iframe|source|audio|video)\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//"
    r"|<link\b[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//",
    re.IGNORECASE,
)


def test_no_resource_loaded_from_another_host(built):
    """No page may load a script, style sheet or image from a CDN (links to other sites are fine)."""
    offenders = {}
    for page in built.rglob("*.html"):
        text = page.read_text(encoding="utf-8", errors="replace")
        hits = [m.group(0) for m in EXTERNAL_RESOURCE.finditer(text)]
        # <link rel="canonical"> etc. are not loads; keep only style sheets, preloads and icons.
        hits = [h for h in hits if not h.lower().startswith("<link") or re.search(r"stylesheet|preload|icon", h, re.I)]
        if hits:
            offenders[str(page.relative_to(built))] = hits
    assert not offenders, f"External resources in the built HTML: {offenders}"


def test_toc_pages_were_built(built):
    missing = [page for page in TOC_PAGES if not (built / page).is_file()]
    assert not missing, f"Pages listed in _toc.yml but not in _build/html: {missing}"


# ---------------------------------------------------------------- links


class _IdCollector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id" or (name == "name" and tag == "a"):
                self.ids.add(value)


@functools.cache
def anchors_of(path: Path) -> frozenset:
    collector = _IdCollector()
    collector.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(collector.ids)


def broken_internal_links(page: str, hrefs: list[str]) -> list[str]:
    """The hrefs of `page` (a path relative to _build/html) that do not resolve."""
    broken = []
    for href in hrefs:
        parts = urllib.parse.urlsplit(href)
        if parts.scheme or parts.netloc or not (parts.path or parts.fragment):
            continue  # another site, mailto:, javascript:, or a bare "#"
        target = posixpath.normpath(posixpath.join(posixpath.dirname(page), urllib.parse.unquote(parts.path)))
        if not parts.path:
            target = page
        elif parts.path.endswith("/"):
            target = posixpath.join(target, "index.html")
        if target.startswith(".."):
            broken.append(f"{href} (outside the book)")
            continue
        path = HTML / target
        if not path.is_file():
            broken.append(f"{href} (no file {target})")
        elif parts.fragment and path.suffix == ".html":
            if urllib.parse.unquote(parts.fragment) not in anchors_of(path):
                broken.append(f"{href} (no id {parts.fragment!r} in {target})")
    return broken


# ---------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def driver(built):
    with chromium.chromium("book", "1280,1000", console_log=True) as browser:
        browser.set_script_timeout(MATHJAX_TIMEOUT_S + 5)
        browser.set_page_load_timeout(60)
        yield browser


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def server(built):
    """Serve _build/html on 127.0.0.1 at a free port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(built))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


# Resolves with a report once MathJax has typeset the page (or has not loaded).
WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
const timeout = arguments[0] * 1000;
const start = Date.now();
function report(status) {
  const maths = Array.from(document.querySelectorAll('.math'));
  done({
    status: status,
    math: maths.length,
    untypeset: maths.filter(m => !m.querySelector('mjx-container'))
                    .map(m => m.textContent.slice(0, 80)),
    containers: document.querySelectorAll('mjx-container').length,
    errors: texErrors(),
  });
}
// TeX errors become <merror>; an undefined macro becomes a red <mtext>.
function texErrors() {
  const errors = [];
  if (!(window.MathJax && MathJax.startup && MathJax.startup.document)) return errors;
  for (const item of MathJax.startup.document.math) {
    const mml = MathJax.startup.toMML(item.root);
    if (/<merror|<mtext[^>]*mathcolor="red"/.test(mml)) errors.push(item.math.slice(0, 80));
  }
  return errors;
}
let loadedAt = null;
function poll() {
  const loaded = document.readyState === 'complete';
  if (loaded && loadedAt === null) loadedAt = Date.now();
  if (loaded && document.querySelectorAll('.math').length === 0) {
    report('no math');
  } else if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(() => report('typeset'), e => report('failed: ' + e));
  } else if (Date.now() - start > timeout || (loaded && Date.now() - loadedAt > 3000)) {
    // tex-chtml.js is a deferred script: it has run by the time the page has loaded.
    report('MathJax did not load');
  } else {
    setTimeout(poll, 100);
  }
}
poll();
"""

# Makes lazy images load, then reports those that did not.
WAIT_FOR_IMAGES = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
images.forEach(img => { img.loading = 'eager'; });
Promise.all(images.map(img => img.complete ? null :
    new Promise(ok => { img.addEventListener('load', ok); img.addEventListener('error', ok); })))
  .then(() => done({
    count: images.length,
    broken: images.filter(img => !(img.complete && img.naturalWidth > 0))
                  .map(img => img.getAttribute('src')),
  }));
"""

# Visible text outside code, with typeset math removed: raw TeX must not remain.
TEXT_OUTSIDE_CODE = """
const body = document.querySelector('main') || document.body;
const copy = body.cloneNode(true);
copy.querySelectorAll('pre, code, script, style, textarea, mjx-container, .highlight')
    .forEach(e => e.remove());
return copy.textContent;
"""

RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\begin\{|\\frac|\\sum")


def check_page(browser, url: str, page: str) -> dict:
    """Load `url` and check its math, images and local resources; return the MathJax report."""
    browser.get_log("browser")  # drop messages left by earlier pages
    browser.get(url)
    math = browser.execute_async_script(WAIT_FOR_MATHJAX, MATHJAX_TIMEOUT_S)
    assert math["status"] in ("typeset", "no math"), f"{page}: {math['status']}"
    assert not math["untypeset"], f"{page}: equations not typeset by MathJax: {math['untypeset']}"
    assert not math["errors"], f"{page}: MathJax errors: {math['errors']}"
    leftover = sorted(set(RAW_TEX.findall(browser.execute_script(TEXT_OUTSIDE_CODE))))
    assert not leftover, f"{page}: raw TeX left in the text: {leftover}"

    images = browser.execute_async_script(WAIT_FOR_IMAGES)
    assert not images["broken"], f"{page}: images that did not load: {images['broken']}"

    base = url[: url.index("://") + 3]
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    origin = urllib.parse.urlsplit(url)
    foreign = [r for r in loaded if urllib.parse.urlsplit(r)[:2] != origin[:2]]
    assert not foreign, f"{page}: resources loaded from elsewhere than {base}: {foreign}"
    return math


@pytest.mark.parametrize("page", TOC_PAGES)
def test_page_over_http(driver, server, page):
    math = check_page(driver, server + page, page)

    errors = [
        e["message"]
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and not HARMLESS_CONSOLE_ERRORS.search(e["message"])
    ]
    assert not errors, f"{page}: browser console errors: {errors}"

    hrefs = driver.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'))")
    broken = broken_internal_links(page, hrefs)
    assert not broken, f"{page}: broken internal links: {broken}"

    clipped = driver.execute_script(
        "return Array.from(document.querySelectorAll('div.cell_input pre'))"
        ".filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.textContent.slice(0, 60))")
    assert not clipped, f"{page}: code cells that scroll sideways, hiding code: {clipped}"

    figures = driver.execute_script(
        "return Array.from(document.querySelectorAll('div.cell_output img')).map(img => ({"
        "src: img.getAttribute('src'), alt: img.getAttribute('alt') || '',"
        "number: ((img.closest('figure') || document.createElement('i'))"
        "         .querySelector('.caption-number') || {}).textContent || ''}))")
    unlabelled = [f["src"] for f in figures
                  if not f["alt"].strip() or f["alt"].endswith(".png") or not f["number"].startswith("Fig")]
    assert not unlabelled, f"{page}: figures without a number, a caption or alt text: {unlabelled}"

    source = (HTML / page).read_text(encoding="utf-8")
    if 'class="math' in source:
        assert math["containers"] > 0, f"{page}: has math but no MathJax output"


def test_front_page_redirects_to_the_intro(driver, server):
    driver.get(server)
    WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith(TOC_PAGES[0]))


def test_math_page_over_file_url(driver, built):
    """The book opened straight from disk (no server) must render its equations too."""
    page = MATH_PAGE
    math = check_page(driver, (built / page).as_uri(), page)
    assert math["status"] == "typeset" and math["containers"] > 0, f"{page} over file://: {math}"


def test_screenshot(driver, server):
    driver.get(server + SCREENSHOT_PAGE)
    math = driver.execute_async_script(WAIT_FOR_MATHJAX, MATHJAX_TIMEOUT_S)
    assert math["status"] == "typeset", f"{SCREENSHOT_PAGE}: {math['status']}"
    assert driver.save_screenshot(str(SCREENSHOT)), "Chromium could not save the screenshot"
    assert SCREENSHOT.stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SCREENSHOT, SCREENSHOT_COPY)


# ---------------------------------------------------------------- chapter 16's explorer in the page

EXPLORER_PAGE = "notebooks/16_explorer.html"

# The static explorer's controls, marked point, curve, bars and summary, as drawn.
EXPLORER_STATE = """
const root = document.getElementById('obd-explorer');
if (!root || !root.querySelector('.obd-explorer-point[data-percent]')) return null;
const point = root.querySelector('.obd-explorer-point');
const value = name => root.querySelector(`[name=${name}]`).value;
return {
  network: value('network'), seed: value('seed'), method: value('method'), scope: value('scope'),
  percent: Number(value('percent')),
  seeds: Array.from(root.querySelectorAll('select[name=seed] option')).map(o => o.value),
  point: [Number(point.getAttribute('cx')), Number(point.getAttribute('cy'))],
  pointData: [Number(point.dataset.percent), point.dataset.accuracy],
  curve: root.querySelector('polyline.curve').getAttribute('points').split(' ')
             .map(p => p.split(',').map(Number)),
  bars: Array.from(root.querySelectorAll('rect.bar')).map(b => Number(b.dataset.share)),
  summary: root.querySelector('pre.obd-explorer-summary').textContent,
  overflow: root.scrollWidth - root.clientWidth,
  pageOverflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
};
"""


def embedded_explorer_data() -> dict:
    """The JSON the built chapter 16 embeds for its explorer."""
    import json

    text = (HTML / EXPLORER_PAGE).read_text(encoding="utf-8")
    match = re.search(r'<script type="application/json" class="obd-explorer-data">(.*?)</script>', text, re.S)
    assert match, f"{EXPLORER_PAGE}: no embedded explorer data"
    return json.loads(match[1])


def expected_view(data: dict, network: str, seed: int, method: str, scope: str, percent: int) -> dict:
    """What the page must show for a setting, from the embedded (precomputed) numbers."""
    import numpy as np

    key = f"{network}/{seed}/{method}/{scope}"
    counts = np.cumsum(np.asarray(data["tables"][data["pruned"][key]]), axis=1)[:, percent]
    return {"accuracy": data["accuracy"][key][percent] / 10_000,
            "shares": counts / np.asarray(data["sizes"]),
            "overall": counts.sum() / sum(data["sizes"])}


def test_explorer_runs_in_the_page(driver, server, built):
    """Chapter 16's static explorer: the controls redraw the point, the bars and the text."""
    import numpy as np
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    data = embedded_explorer_data()
    assert len(data["accuracy"]) == (3 * 3 + 5) * 6 * 2  # networks x seeds, saliencies, scopes
    driver.get_log("browser")
    driver.get(server + EXPLORER_PAGE)
    state = WebDriverWait(driver, 20).until(lambda d: d.execute_script(EXPLORER_STATE),
                                            "the explorer did not draw")
    assert "NBVAL" not in driver.execute_script("return document.body.innerText").upper(), (
        f"{EXPLORER_PAGE}: an nbval marker is visible")

    def control(name):
        return driver.find_element(By.CSS_SELECTOR, f"#obd-explorer [name={name}]")

    def check(network, seed, method, scope, percent):
        now = driver.execute_script(EXPLORER_STATE)
        assert (now["network"], now["seed"], now["method"], now["scope"], now["percent"]) == (
            network, str(seed), method, scope, percent), now
        want = expected_view(data, network, seed, method, scope, percent)
        assert now["pointData"] == [percent, f"{want['accuracy']:.4f}"], now["pointData"]
        # The point sits on the curve's vertex for this percent, and the curve is the accuracies.
        assert now["point"] == now["curve"][percent], (now["point"], now["curve"][percent])
        accuracies = np.asarray(data["accuracy"][f"{network}/{seed}/{method}/{scope}"]) / 10_000
        ys = np.array([y for _, y in now["curve"]])
        slope, intercept = np.polyfit(accuracies, ys, 1)
        assert slope < 0 and np.abs(ys - (slope * accuracies + intercept)).max() < 0.1
        np.testing.assert_allclose(now["bars"], want["shares"], atol=5e-5)
        assert (f"{100 * want['overall']:.1f}% of parameters pruned: "
                f"test accuracy {want['accuracy']:.4f}") in now["summary"], now["summary"]
        assert now["overflow"] <= 1 and now["pageOverflow"] <= 1, "the explorer is wider than the page"
        return now

    first = check("plain", 0, "obd", "global", 50)
    assert state["seeds"] == ["0", "1", "2"]
    steps = [
        (lambda: Select(control("method")).select_by_value("magnitude"), ("plain", 0, "magnitude", "global", 50)),
        (lambda: Select(control("scope")).select_by_value("layer"), ("plain", 0, "magnitude", "layer", 50)),
        (lambda: Select(control("network")).select_by_value("post_obd_all_layers_dropout"),
         ("post_obd_all_layers_dropout", 0, "magnitude", "layer", 50)),
        (lambda: control("percent").send_keys(*[Keys.ARROW_RIGHT] * 7),
         ("post_obd_all_layers_dropout", 0, "magnitude", "layer", 57)),
        (lambda: Select(control("method")).select_by_value("asran_obd"),
         ("post_obd_all_layers_dropout", 0, "asran_obd", "layer", 57)),
        (lambda: Select(control("network")).select_by_value("dropout"), ("dropout", 0, "asran_obd", "layer", 57)),
        (lambda: Select(control("seed")).select_by_value("2"), ("dropout", 2, "asran_obd", "layer", 57)),
    ]
    previous = first
    for act, setting in steps:
        act()
        now = check(*setting)
        assert now["summary"] != previous["summary"], f"the summary did not change for {setting}"
        if setting[0].startswith("post_"):
            assert now["seeds"] == ["0"]
        previous = now
    assert previous["point"] != first["point"]

    errors = [e["message"] for e in driver.get_log("browser")
              if e["level"] == "SEVERE" and not HARMLESS_CONSOLE_ERRORS.search(e["message"])]
    assert not errors, f"{EXPLORER_PAGE}: browser console errors: {errors}"

    # Opened straight from disk (no server, no network), it draws the same first view.
    driver.get((built / EXPLORER_PAGE).as_uri())
    from_disk = WebDriverWait(driver, 20).until(lambda d: d.execute_script(EXPLORER_STATE),
                                                "the explorer did not draw over file://")
    assert (from_disk["point"], from_disk["summary"]) == (first["point"], first["summary"])
