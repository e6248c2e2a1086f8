"""The documentation site: it builds with warnings as errors, and a reader finds what the pages promise.

Each test builds a copy of ``docs/`` into a temporary directory (the tree's own ``docs/_build`` and the
generated ``docs/auto_examples`` / ``docs/api/generated`` are left alone) with the README's command,
``python -m sphinx -W --keep-going -b html``, then checks the result as a person would:

- every internal link (``href``, fragment included) and every image, script and style sheet of every page
  resolves to a file of the site, and MathJax is one of them (shipped: the formulas render offline);
- every public name (``docs/_ext/api_coverage.py``) has its API page;
- the executed gallery pages show their figures;
- headless Chromium (Debian's ``chromium``; the browser part is skipped without it) opens the index, one
  API page and one gallery page, their rendered text holds the page's heading, and their screenshots are
  pictures, not blank pages. ``SSDOPS_DOCS_SCREENSHOTS=DIR`` keeps the screenshots in ``DIR``.

``test_site_quick`` runs one gallery example (about 20 s); ``test_site_full`` (slow) runs all of them and
checks that each takes under 30 s.
"""
from __future__ import annotations

import html.parser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("sphinx_gallery")
pytest.importorskip("numpydoc")
pytest.importorskip("pydata_sphinx_theme")

DOCS = Path(__file__).resolve().parents[1] / "docs"
GENERATED = ("_build", "auto_examples", os.path.join("api", "generated"))
EXAMPLE_SECONDS = 30.0
MIN_EXAMPLES = 10
QUICK_EXAMPLE = "plot_sparsity_pattern"
API_PAGE = "api/generated/ssdops.laplacian.html"

sys.path.insert(0, str(DOCS / "_ext"))
import api_coverage  # noqa: E402


def build(tmp_path, examples):
    """Build a copy of docs/ running the gallery scripts matching ``examples``; returns the HTML root."""
    source, out = tmp_path / "docs", tmp_path / "html"
    shutil.copytree(DOCS, source, ignore=lambda folder, names: [
        n for n in names if os.path.relpath(os.path.join(folder, n), DOCS) in GENERATED or n == "__pycache__"])
    env = dict(os.environ, SSDOPS_DOCS_EXAMPLES=examples, MPLBACKEND="agg")
    result = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                             str(source), str(out)], capture_output=True, text=True, env=env, timeout=1800)
    assert result.returncode == 0, f"sphinx failed:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
    return out


class _Page(html.parser.HTMLParser):
    """The ids and the references (links, images, scripts, style sheets) of one HTML page."""

    REFERENCES = {("a", "href"), ("link", "href"), ("img", "src"), ("script", "src"), ("source", "src")}

    def __init__(self):
        super().__init__()
        self.ids, self.references, self.images, self.scripts = set(), [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and "name" in attrs:
            self.ids.add(attrs["name"])
        for element, attribute in self.REFERENCES:
            if tag == element and attrs.get(attribute):
                self.references.append(attrs[attribute])
                if tag == "img":
                    self.images.append(attrs[attribute])
                if tag == "script":
                    self.scripts.append(attrs[attribute])


def parse(path):
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def broken_references(root):
    """``(page, reference, why)`` for every internal reference of the site that does not resolve."""
    # _static holds the theme's files, templates among them (not pages of the site)
    pages = {path: parse(path) for path in root.rglob("*.html") if "_static" not in path.relative_to(root).parts}
    broken = []
    for path, page in pages.items():
        for reference in page.references:
            parts = urlsplit(reference)
            if parts.scheme or parts.netloc or reference.startswith(("mailto:", "javascript:", "data:")):
                continue                                    # external: not part of the site
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append((path.relative_to(root), reference, "no such file"))
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append((path.relative_to(root), reference, "no such anchor"))
    return pages, broken


def example_seconds(root_source):
    """``{script: seconds}`` from sphinx-gallery's execution-time table of the built gallery."""
    table = (root_source / "auto_examples" / "sg_execution_times.rst").read_text()
    found = re.findall(r"\(``(plot_\w+\.py)``\)\s*\n\s*- (\d+):(\d+\.\d+)", table)
    return {name: 60 * int(minutes) + float(seconds) for name, minutes, seconds in found}


def screenshot(url, path):
    """A headless Chromium screenshot of ``url``, and the rendered DOM."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              "--window-size=1280,1400", "--virtual-time-budget=3000"]
    subprocess.run(common + [f"--screenshot={path}", url], capture_output=True, timeout=120, check=True)
    dom = subprocess.run(common + ["--dump-dom", url], capture_output=True, text=True, timeout=120, check=True)
    return dom.stdout


def check_in_browser(root, pages, directory):
    """Open the pages in Chromium; each shows its heading and its screenshot is a picture."""
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    for page, heading in pages.items():
        shot = directory / (page.replace("/", "_").removesuffix(".html") + ".png")
        dom = screenshot((root / page).as_uri(), shot)
        assert heading in dom, f"{page}: the rendered page does not show {heading!r}"
        image = Image.open(shot).convert("RGB")
        assert image.size == (1280, 1400)
        colours = image.getcolors(maxcolors=1 << 20)
        assert colours is None or len(colours) > 50, f"{page}: the screenshot is (nearly) blank"


def check_site(root, executed, tmp_path):
    """Links and images resolve, every public name is documented, the executed examples show figures, and
    the browser shows the pages."""
    pages, broken = broken_references(root)
    assert not broken, "broken internal links or images:\n" + "\n".join(map(str, broken))

    # The formulas render without network: MathJax is a file of the site (that it resolves is checked above).
    mathjax = {src for page in pages.values() for src in page.scripts if "mathjax" in src.lower()}
    assert mathjax, "no page loads MathJax: the formulas are not rendered"
    external = sorted(src for src in mathjax if urlsplit(src).scheme or urlsplit(src).netloc)
    assert not external, f"pages load MathJax from the network: {external}"

    ids = set().union(*(page.ids for path, page in pages.items() if "api" in path.relative_to(root).parts))
    missing = [name for name in sorted(api_coverage.public_names()) if not {name, f"module-{name}"} & ids]
    assert not missing, f"public names without documentation: {missing}"

    for name in executed:
        page = pages[root / "auto_examples" / f"{name}.html"]
        figures = [src for src in page.images if f"sphx_glr_{name}_0" in src]
        assert figures, f"gallery page {name} shows no figure"

    keep = os.environ.get("SSDOPS_DOCS_SCREENSHOTS")
    check_in_browser(root, {
        "index.html": "Sparse sub-diagonal stencil operators",
        API_PAGE: "ssdops.laplacian",
        f"auto_examples/{QUICK_EXAMPLE}.html": "The SSD storage and the sparse matrix it stands for",
    }, Path(keep) if keep else tmp_path / "screenshots")


def test_site_quick(tmp_path):
    """The whole site with one gallery example run (the others rendered without output)."""
    root = build(tmp_path, QUICK_EXAMPLE)
    check_site(root, [QUICK_EXAMPLE], tmp_path)


@pytest.mark.slow
def test_site_full(tmp_path):
    """The whole site with every gallery example run, each in under 30 s."""
    root = build(tmp_path, r"/plot_")
    seconds = example_seconds(tmp_path / "docs")
    executed = sorted(seconds)
    assert len(executed) >= MIN_EXAMPLES, f"only {len(executed)} gallery examples ran: {executed}"
    slow = {name: s for name, s in seconds.items() if s >= EXAMPLE_SECONDS}
    assert not slow, f"gallery examples over {EXAMPLE_SECONDS} s: {slow}"
    check_site(root, [name.removesuffix(".py") for name in executed], tmp_path)
