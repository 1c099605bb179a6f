"""The built smoke-profile book, opened page by page in headless Chromium (selenium + Debian's
chromium-driver): every page loads, no broken internal link or image, every figure is drawn
(non-zero natural size and a non-blank screenshot) and shown wide enough to read, every table has
the same number of cells in each row, no tag leaked un-escaped into the page (it would become an
unknown element, e.g. ``<eot>``) or double-escaped (``&lt;`` shown as text), the search page finds
a method name.

Skipped, with the reason, when Chromium or its driver is missing: `make test` installs both on a
machine where it may (`apt-get install chromium chromium-driver`, root), else see the README."""
import io
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("href", "src"):
            if key in a and a[key]:
                self.refs.append((tag, a[key]))


def _pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts)


def test_no_broken_internal_links_or_images(smoke_site):
    """Static check of every href/src of every page against the files of the site."""
    assert smoke_site["rc"] == 0, smoke_site["log"]
    html = smoke_site["html"]
    broken = []
    for page in _pages(html):
        parser = _Links()
        parser.feed(page.read_text())
        for tag, ref in parser.refs:
            u = urlparse(ref)
            if u.scheme or ref.startswith(("#", "mailto:", "data:", "javascript:")):
                continue
            target = (page.parent / unquote(u.path)).resolve()
            if not target.exists():
                broken.append(f"{page.relative_to(html)} -> {ref}")
    assert not broken, "broken internal links:\n" + "\n".join(broken[:30])


@pytest.fixture(scope="module")
def driver():
    if not (CHROMEDRIVER and CHROMIUM):
        pytest.skip("headless Chromium not installed; enable with `apt-get install chromium chromium-driver` "
                    "(make test does this automatically when run as root on Debian/Ubuntu)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium (in the dev extra)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def _title_and_text(driver, tries: int = 40) -> tuple[str, str]:
    """The page's title and body text. A page that redirects (index.html) may still be navigating when get()
    returns, more so on a busy machine (make test runs two workers): retry until the document stays."""
    import time

    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    for i in range(tries):
        try:
            if driver.execute_script("return document.readyState") == "complete":
                return driver.title, driver.find_element("tag name", "body").text
        except (NoSuchElementException, StaleElementReferenceException):
            if i == tries - 1:
                raise
        time.sleep(0.25)
    return driver.title, driver.find_element("tag name", "body").text


def test_every_page_loads_and_every_figure_is_drawn(smoke_site, driver):
    from PIL import Image

    assert smoke_site["rc"] == 0, smoke_site["log"]
    html = smoke_site["html"]
    problems, n_images = [], 0
    for page in _pages(html):
        driver.get(page.as_uri())
        title, body = _title_and_text(driver)
        if not title or len(body) < 50:
            problems.append(f"{page.name}: empty page (title={title!r})")
        if "Traceback (most recent call last)" in body:
            problems.append(f"{page.name}: shows a Python traceback")
        for img in driver.find_elements("css selector", "article img, main img"):
            n_images += 1
            driver.execute_script("arguments[0].scrollIntoView();", img)
            w = driver.execute_script("return arguments[0].complete ? arguments[0].naturalWidth : 0;", img)
            if not w:
                problems.append(f"{page.name}: image {img.get_attribute('src')} did not load")
                continue
            shot = Image.open(io.BytesIO(img.screenshot_as_png)).convert("L")
            lo, hi = shot.getextrema()
            if hi - lo < 30:
                problems.append(f"{page.name}: image {img.get_attribute('src')} renders blank")
    assert not problems, "\n".join(problems)
    chapters = list((html / "chapters").glob("*.html"))
    if chapters:
        assert n_images >= len(chapters), "every chapter shows at least one figure"


# Runs in the page: every reader-facing defect of tables, tags and images, as strings.
PAGE_CHECKS_JS = r"""
const minScale = arguments[0];
const out = [];
const root = document.querySelector('article') || document.querySelector('main') || document.body;
if (!root) return out;  // a redirect page (index.html) that is already navigating away
// 1. tables whose rows have different numbers of cells (a | in a Markdown cell shifts columns)
root.querySelectorAll('table').forEach((t, ti) => {
  const width = r => Array.from(r.cells).reduce((n, c) => n + (c.colSpan || 1), 0);
  const rows = Array.from(t.rows).filter(r => !r.closest('table') || r.closest('table') === t);
  if (!rows.length) return;
  const head = width(rows[0]);
  rows.forEach((r, ri) => {
    if (width(r) !== head) out.push(`table ${ti} row ${ri}: ${width(r)} cells, header has ${head}: ` +
                                     r.innerText.slice(0, 80));
  });
});
// 2. tags that leaked into the DOM un-escaped (<EOT>, <eos>) and text that was escaped twice
root.querySelectorAll('*').forEach(el => {
  if (el instanceof HTMLUnknownElement && !el.tagName.includes('-'))
    out.push(`un-escaped tag <${el.tagName.toLowerCase()}> in: ` + ((el.parentElement || el).innerText || '').slice(0, 80));
});
const text = root.innerText;
const dbl = text.match(/&(lt|gt|amp|quot);/);
if (dbl) out.push(`double-escaped entity ${dbl[0]} shown as text near: ` +
                  text.slice(Math.max(0, dbl.index - 40), dbl.index + 40));
// 3. images scaled below what their text needs (the figure was made wider than the page)
root.querySelectorAll('img').forEach(img => {
  if (!img.complete || !img.naturalWidth || img.naturalWidth < 200) return;
  const scale = img.clientWidth / img.naturalWidth;
  if (scale < minScale) out.push(`image ${img.getAttribute('src')} shown at ${Math.round(100 * scale)} % ` +
                                 `(${img.clientWidth} of ${img.naturalWidth} px; at least ${Math.round(100 * minScale)} % keeps its text readable)`);
});
// 4. maths MathJax left as source (no offline MathJax: Sphinx's default loads it from a CDN)
root.querySelectorAll('.math').forEach(el => {
  if (!el.querySelector('mjx-container') && /\\\(|\\\[|\$/.test(el.textContent))
    out.push('maths not rendered: ' + el.textContent.slice(0, 60));
});
return out;
"""


def page_problems(driver) -> list[str]:
    """Table, tag and image defects of the page loaded in ``driver`` (see PAGE_CHECKS_JS)."""
    from repro.plots import min_display_scale

    # MathJax typesets after the load event: wait for it (when the page loads MathJax at all)
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const p = window.MathJax && MathJax.startup && MathJax.startup.promise;"
        "p ? p.then(() => done(1), () => done(0)) : done(0);")
    return driver.execute_script(PAGE_CHECKS_JS, min_display_scale())


def test_tables_tags_and_image_widths(smoke_site, driver):
    assert smoke_site["rc"] == 0, smoke_site["log"]
    html = smoke_site["html"]
    problems = []
    for page in _pages(html):
        driver.get(page.as_uri())
        problems += [f"{page.relative_to(html)}: {p}" for p in page_problems(driver)]
    assert not problems, "\n".join(problems[:60])


def test_page_checks_catch_the_defects(driver, tmp_path):
    """The in-page checks themselves, on a page with one defect of each kind and a clean table."""
    from PIL import Image

    Image.new("RGB", (1600, 400), "white").save(tmp_path / "wide.png")
    (tmp_path / "p.html").write_text(
        "<html><body><main><article>"
        "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>"
        "<table><tr><th>claim</th><th>verdict</th></tr><tr><td>x</td><td>y</td><td>z</td></tr></table>"
        "<p>target <EOT> here</p><p>shown &amp;lt; twice</p>"
        "<img src='wide.png' style='width:700px'>"
        "<p><span class='math notranslate nohighlight'>\\(\\rho\\)</span></p>"
        "</article></main></body></html>")
    driver.get((tmp_path / "p.html").as_uri())
    driver.execute_script("return new Promise(r => { const i = document.images[0]; "
                          "i.complete ? r() : (i.onload = r); });")
    probs = page_problems(driver)
    assert any(p.startswith("table 1 row 1: 3 cells") for p in probs), probs
    assert not any(p.startswith("table 0") for p in probs), probs
    assert any("un-escaped tag <eot>" in p for p in probs), probs
    assert any("double-escaped" in p for p in probs), probs
    assert any("wide.png shown at 44 %" in p for p in probs), probs
    assert any(p.startswith("maths not rendered: \\(\\rho") for p in probs), probs


def test_search_finds_a_method_name(smoke_site, driver):
    from selenium.webdriver.support.ui import WebDriverWait

    assert smoke_site["rc"] == 0, smoke_site["log"]
    html = smoke_site["html"]
    term = "Mahalanobis" if list((html / "chapters").glob("ch4*.html")) else "Reproduction"
    driver.get((html / "search.html").as_uri() + f"?q={term}")
    WebDriverWait(driver, 30).until(
        lambda d: d.find_elements("css selector", "ul.search li") or "did not match" in d.page_source)
    hits = driver.find_elements("css selector", "ul.search li")
    assert hits, f"search for {term!r} found nothing"
