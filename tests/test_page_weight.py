"""The dashboard's first load stays small: at most 20 KB gzipped in all.

Sizes are those of the files the board serves: web/ gzipped exactly as
tools/build.py does it. "First load" is every file the page pulls in by
itself when opened: the HTML, what it links (stylesheet, scripts, module
preloads, manifest, icon), the modules those scripts import statically, and
the icons the manifest names. Modules imported on demand (``import("...")``)
are not part of the first load; they are still counted in the total of
everything shipped, which has its own, looser cap.
"""

import json
import os
import re

from tools import build

FIRST_LOAD_BUDGET = 20 * 1024
SHIPPED_BUDGET = 24 * 1024

HTML_REF = re.compile(r'<(?:link|script|img)\b[^>]*?\b(?:href|src)="([^"]+)"', re.I)
JS_STATIC_IMPORT = re.compile(r'^\s*(?:import|export)\s[^;]*?\bfrom\s*"([^"]+)"|^\s*import\s*"([^"]+)"', re.M)
JS_DYNAMIC_IMPORT = re.compile(r'\bimport\(\s*"([^"]+)"\s*\)')


def local(ref):
    """The web/ file a same-origin reference points at, or None."""
    assert not re.match(r"^(https?:)?//", ref), "external reference: %s" % ref
    ref = ref.split("?")[0].split("#")[0]
    if not ref or ref.startswith("data:"):
        return None
    while ref.startswith("./"):
        ref = ref[2:]
    return os.path.normpath(ref.lstrip("/"))


def read(name):
    with open(os.path.join(build.WEB_DIR, name), encoding="utf-8") as f:
        return f.read()


def first_load(page="index.html"):
    """Every file the first load of ``page`` fetches, by walking its references."""
    seen, todo = set(), [page]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        text = read(name)
        if name.endswith(".html"):
            refs = HTML_REF.findall(text)
        elif name.endswith(".js"):
            refs = [a or b for a, b in JS_STATIC_IMPORT.findall(text)]
        elif name.endswith(".webmanifest"):
            refs = [icon["src"] for icon in json.loads(text).get("icons", [])]
        else:
            refs = []
        todo.extend(r for r in map(local, refs) if r)
    return seen


def test_first_load_fits_the_budget(tmp_path):
    assets = build.build_web(str(tmp_path))
    needed = first_load()
    missing = needed - set(assets)
    assert not missing, "referenced but not shipped (extension not in CONTENT_TYPES?): %s" % missing
    total = sum(assets[name]["size"] for name in needed)
    detail = ", ".join("%s %d" % (n, assets[n]["size"]) for n in sorted(needed))
    print("first load: %d bytes gzipped (%s)" % (total, detail))
    assert total <= FIRST_LOAD_BUDGET, "first load is %d bytes gzipped: %s" % (total, detail)
    # what is shipped but loaded later (settings) is small too
    shipped = sum(a["size"] for a in assets.values())
    assert shipped <= SHIPPED_BUDGET, "all web assets: %d bytes gzipped" % shipped


def test_the_setup_page_fits_the_budget_too(tmp_path):
    # what a phone on the board's access point loads (camwatch.portal)
    assets = build.build_web(str(tmp_path))
    needed = first_load("setup.html")
    total = sum(assets[name]["size"] for name in needed)
    print("setup page: %d bytes gzipped" % total)
    assert total <= FIRST_LOAD_BUDGET


def test_every_shipped_file_is_used():
    """No dead weight in web/: each file is reached from the dashboard or
    the setup page (the captive portal's)."""
    used = first_load() | first_load("setup.html")
    for name in list(used):
        if name.endswith(".js"):
            used.update(local(r) for r in JS_DYNAMIC_IMPORT.findall(read(name)))
    on_disk = {n for n in os.listdir(build.WEB_DIR)
               if os.path.splitext(n)[1] in build.CONTENT_TYPES}
    assert on_disk - used == set()


def test_no_external_requests_in_the_sources():
    """No CDN, font service or other host anywhere in the page's files."""
    for name in os.listdir(build.WEB_DIR):
        text = read(name)
        hosts = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I)
        hosts = [h for h in hosts if "www.w3.org/2000/svg" not in h and "w3.org" not in h]
        assert hosts == [], (name, hosts)
