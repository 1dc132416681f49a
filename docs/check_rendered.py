"""Open the built documentation in headless Chromium and check that it renders.

Usage, after building the HTML::

    python docs/check_rendered.py docs/_build/html [--screenshots DIR]

Serves the build directory on localhost, loads the home page, the user guide,
the API pages, the gallery index and every gallery example in Chromium (through
selenium and chromedriver), and checks that each page has a title and body
text and that every gallery image has loaded (``naturalWidth > 0``). With
``--screenshots DIR`` it also saves a PNG of each page. Exits with status 1 and
a list of problems when a check fails, and with status 2 and a line saying what
to install when Chromium, chromedriver or selenium is missing.

Needs Debian's ``chromium`` and ``chromium-driver`` packages (or
``--chromium`` / ``--chromedriver`` paths) and ``pip install selenium``.
"""

import argparse
import functools
import importlib.util
import shutil
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
]

# Images that a gallery page must show: its figures and, on the gallery
# index, the thumbnails.
GALLERY_IMAGES = (
    "img.sphx-glr-single-img, img.sphx-glr-multi-img, .sphx-glr-thumbcontainer img"
)

IMAGE_STATE = """
return Array.from(document.querySelectorAll(arguments[0])).map(
    img => [img.getAttribute('src'), img.complete, img.naturalWidth]);
"""

SCROLL_TO_FIGURE = """
const img = document.querySelector('img.sphx-glr-single-img, img.sphx-glr-multi-img');
if (img) { img.scrollIntoView({block: 'center'}); }
"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def serve(directory):
    """Serve ``directory`` on a free localhost port in a daemon thread."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def pages_to_check(html_dir):
    """Relative paths of the pages to load: the main pages and every example."""
    pages = ["index.html", "user_guide.html", "api.html", "auto_examples/index.html"]
    pages += sorted(
        p.relative_to(html_dir).as_posix()
        for p in (html_dir / "gen_modules").glob("*.html")
    )
    examples = sorted(
        p.relative_to(html_dir).as_posix()
        for p in (html_dir / "auto_examples").glob("plot_*.html")
    )
    return [p for p in pages if (html_dir / p).exists()], examples


def missing_requirements(chromium, chromedriver):
    """What to install before pages can be checked (an empty list when nothing)."""
    missing = []
    if shutil.which(chromium) is None:
        missing.append(
            f"chromium (`apt-get install chromium`, or pass --chromium PATH; "
            f"{chromium} is missing)"
        )
    if shutil.which(chromedriver) is None:
        missing.append(
            f"chromedriver (`apt-get install chromium-driver`, or pass --chromedriver "
            f"PATH; {chromedriver} is missing)"
        )
    if importlib.util.find_spec("selenium") is None:
        missing.append("selenium (`pip install selenium`)")
    return missing


def make_driver(chromium, chromedriver, profile_dir):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}"]:
        options.add_argument(flag)
    # Do not wait for resources that cannot load offline (MathJax's CDN).
    options.page_load_strategy = "eager"
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(60)
    return driver


def check_page(driver, url, expect_images, timeout=30.0):
    """Problems found on one page (an empty list when it renders)."""
    driver.get(url)
    problems = []
    deadline = time.monotonic() + timeout
    while True:
        state = driver.execute_script(IMAGE_STATE, GALLERY_IMAGES)
        pending = [s for s in state if not s[1]]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    title = driver.title.strip()
    text = driver.execute_script("return document.body ? document.body.innerText : ''")
    if not title or "404" in title or len(text) < 200:
        problems.append(f"{url}: no content (title {title!r}, {len(text)} characters)")
    if expect_images and not state:
        problems.append(f"{url}: no gallery images")
    for src, complete, width in state:
        if not complete or not width:
            problems.append(f"{url}: image {src} did not load")
    return problems, len(state)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", type=Path, help="the built HTML, e.g. docs/_build/html")
    parser.add_argument("--screenshots", type=Path, help="save a PNG of each page here")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args(argv)

    missing = missing_requirements(args.chromium, args.chromedriver)
    if missing:
        what = ", ".join(missing[:-1]) + " and " * (len(missing) > 1) + missing[-1]
        print(f"check_rendered.py cannot open a browser: install {what}.", file=sys.stderr)
        return 2
    from selenium.common.exceptions import WebDriverException

    html_dir = args.html_dir.resolve()
    pages, examples = pages_to_check(html_dir)
    if not examples:
        print(f"no gallery examples under {html_dir}/auto_examples", file=sys.stderr)
        return 1
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)

    problems = []
    with tempfile.TemporaryDirectory(prefix="skvae-chromium-") as profile:
        try:
            driver = make_driver(args.chromium, args.chromedriver, profile)
        except WebDriverException as exc:
            reason = (exc.msg or type(exc).__name__).strip().splitlines()[0]
            print(
                f"{args.chromium} did not start through {args.chromedriver}: {reason}",
                file=sys.stderr,
            )
            return 2
        server = serve(html_dir)
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        try:
            for page in pages + examples:
                expect_images = page in examples or page == "auto_examples/index.html"
                found, n_images = check_page(driver, base + page, expect_images)
                problems += found
                status = "ok" if not found else "FAILED"
                print(f"{status:<7}{page} ({n_images} gallery images)")
                if args.screenshots:
                    driver.execute_script(SCROLL_TO_FIGURE)
                    name = page.replace("/", "_").replace(".html", ".png")
                    driver.save_screenshot(str(args.screenshots / name))
        finally:
            driver.quit()
            server.shutdown()
            server.server_close()

    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(pages) + len(examples)} pages checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
