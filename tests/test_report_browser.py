"""The reports in a real browser: headless Chromium opens them from file:// (no network), takes a
screenshot, and the page's own DOM says every image loaded, every in-page link has its target, and
nothing was logged as an error. Skipped (one line) where Debian's ``chromium`` is not installed.

The DOM is read with ``--dump-dom`` from a copy of the report, next to it, with one added script that
records errors from the start and, on load, writes its findings into the page as JSON. Links to
files are checked on disk from the URLs the browser resolved. Set PREDVIS_SHOTS to a folder to keep
the screenshots there.
"""
import html
import json
import os
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from predvis.cli import main

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:   # conftest.py prints the one line that says so
    pytest.skip("no chromium on this machine (apt-get install chromium)", allow_module_level=True)

PROBE = """<script>(function(){var errors=[];var error=console.error;
console.error=function(){errors.push('console: '+Array.prototype.join.call(arguments,' '));error.apply(console,arguments)};
window.addEventListener('error',function(e){var t=e.target;
 errors.push(t&&t!==window?'failed to load '+(t.src||t.href):'script error: '+e.message)},true);
window.addEventListener('load',function(){
 var images=[].map.call(document.images,function(i){return {src:i.getAttribute('src').slice(0,60),loaded:i.complete&&i.naturalWidth>0}});
 var links=[].map.call(document.querySelectorAll('a[href]'),function(a){var h=a.getAttribute('href');
  return {href:h,url:a.href,anchor:h.charAt(0)==='#'?!!document.getElementById(decodeURIComponent(h.slice(1))):null}});
 var out=document.createElement('pre');out.id='__probe';
 out.textContent=JSON.stringify({images:images,links:links,errors:errors});document.body.appendChild(out)});})();</script>"""

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
         "--disable-background-networking", "--disable-extensions", "--virtual-time-budget=15000"]


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120)


def _check_in_browser(page: Path, tmp_path: Path, shot_name: str) -> dict:
    probe = page.with_name(".probe-" + page.name)
    probe.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    try:
        done = _chromium(["--enable-logging=stderr", "--v=0", "--dump-dom", probe.as_uri()], tmp_path / "profile")
    finally:
        probe.unlink()
    found = re.search(r'<pre id="__probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the page did not finish loading: {done.stderr[-500:]}"
    result = json.loads(html.unescape(found.group(1)))
    result["console"] = [ln for ln in done.stderr.splitlines() if ":CONSOLE(" in ln]

    shots = Path(os.environ.get("PREDVIS_SHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / shot_name
    _chromium(["--window-size=1280,2000", f"--screenshot={shot}", page.as_uri()], tmp_path / "profile")
    assert shot.is_file() and shot.stat().st_size > 10_000, "no screenshot"
    print(f"screenshot: {shot}")
    return result


def _assert_clean(result: dict, page: Path) -> None:
    assert result["images"], "no image in the page"
    assert [i for i in result["images"] if not i["loaded"]] == []
    assert [link for link in result["links"] if link["anchor"] is False] == []
    for link in result["links"]:
        if link["anchor"] is None:
            url = urllib.parse.urlparse(link["url"])
            assert url.scheme == "file", f"network link {link['url']}"
            assert Path(urllib.request.url2pathname(url.path)).exists(), f"dead link {link['href']}"
    assert result["errors"] == [] and result["console"] == []


def test_run_report_in_chromium(report_runs, tmp_path, capsys):
    run = report_runs["pvm"]
    assert main(["report", str(run)]) == 0
    page = Path(capsys.readouterr().out.strip())
    result = _check_in_browser(page, tmp_path, "report_run.png")
    _assert_clean(result, page)
    assert sum(1 for link in result["links"] if link["anchor"]) >= 3   # the contents jump to the probe outputs


def test_tables_report_in_chromium(tmp_path, capsys):
    tables = tmp_path / "quick"
    shutil.copytree(REPO / "tables" / "quick", tables)
    (tables / "index.html").unlink()
    assert main(["report", str(tables)]) == 0
    page = Path(capsys.readouterr().out.strip())
    result = _check_in_browser(page, tmp_path, "report_tables.png")
    # a tables page has no images: only the links are checked
    result["images"] = result["images"] or [{"loaded": True}]
    _assert_clean(result, page)
    assert sum(1 for link in result["links"] if link["anchor"]) >= 10
