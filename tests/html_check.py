"""Static checks of a written HTML report: every image source and link resolves, nothing is fetched
from the network, no script. Shared by the report tests and the browser test."""
from __future__ import annotations

import html.parser
import urllib.parse
from pathlib import Path


class _Refs(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("href") is not None:
            self.hrefs.append(a["href"])
        if a.get("src") is not None:
            self.srcs.append(a["src"])
        if tag in ("script", "link", "iframe"):
            self.scripts += 1


def problems(page: Path) -> list[str]:
    """What is wrong with ``page``: dead links, missing images, network or script references."""
    refs = _Refs()
    refs.feed(Path(page).read_text())
    out = []
    if refs.scripts:
        out.append(f"{refs.scripts} script/link/iframe tag(s)")
    for src in refs.srcs:
        if src.startswith("data:image/"):
            continue
        if "://" in src or src.startswith("//"):
            out.append(f"network image {src[:80]}")
        elif not (page.parent / urllib.parse.unquote(src)).is_file():
            out.append(f"missing image {src}")
    for href in refs.hrefs:
        if href.startswith("#"):
            if href[1:] not in refs.ids:
                out.append(f"no anchor {href}")
        elif "://" in href or href.startswith("//"):
            out.append(f"network link {href[:80]}")
        elif not (page.parent / urllib.parse.unquote(href.split("#")[0])).exists():
            out.append(f"dead link {href}")
    return out


def counts(page: Path) -> dict:
    refs = _Refs()
    refs.feed(Path(page).read_text())
    return {"images": len(refs.srcs), "links": len(refs.hrefs), "ids": len(refs.ids)}
