"""The built smoke-profile book, opened page by page in headless Chromium (selenium + Debian's
chromium-driver): every page loads, no broken internal link or image, every figure is drawn
(non-zero natural size and a non-blank screenshot), the search page finds a method name.

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


def test_every_page_loads_and_every_figure_is_drawn(smoke_site, driver):
    from PIL import Image

    assert smoke_site["rc"] == 0, smoke_site["log"]
    html = smoke_site["html"]
    problems, n_images = [], 0
    for page in _pages(html):
        driver.get(page.as_uri())
        title = driver.title
        body = driver.find_element("tag name", "body").text
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
