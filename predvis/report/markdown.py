"""The markdown predvis writes (``tables/*.md``, ``README.md`` indexes) as HTML.

Covers what the table writers emit: ``#`` headings, paragraphs, ``-`` lists, pipe tables (a header
row, a ``|---|`` rule, body rows), and inline ``code``, ``**bold**`` and ``[text](target)`` links.
All text is HTML-escaped. Each link target is passed to ``link`` (relative target -> href, or None
to show the text without a link), so the caller decides which links resolve.
"""
from __future__ import annotations

import html
import re
from typing import Callable

Linker = Callable[[str], "str | None"]

_INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|\[([^\]]+)\]\(([^)\s]+)\)")


def slug(text: str) -> str:
    """An HTML id from a heading or file name: lower case, runs of other characters become '-'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def inline(text: str, link: Linker) -> str:
    """One line of markdown text as escaped HTML with code, bold and links."""
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[pos:m.start()]))
        code, bold, label, target = m.groups()
        if code is not None:   # paths (run ids) may break after a '/', nowhere else
            parts = [p for p in re.split(r"(?<=/)", code) if p]
            out.append("<code>" + "<wbr>".join(f'<span class="nb">{html.escape(p)}</span>' for p in parts) + "</code>"
                       if len(parts) > 1 else f"<code>{html.escape(code)}</code>")
        elif bold is not None:
            out.append(f"<strong>{inline(bold, link)}</strong>")
        else:
            href = link(target)
            shown = inline(label, link)
            out.append(f'<a href="{html.escape(href, quote=True)}">{shown}</a>' if href else shown)
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


def _cells(line: str) -> list[str]:
    body = line.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|"):
        body = body[:-1]
    return [c.strip() for c in body.split("|")]


def _is_rule(line: str) -> bool:
    return bool(re.fullmatch(r"\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*", line))


def _numeric(cell: str) -> bool:
    """A number, ``mean ± std``, a percentage, or one of those followed by a count ``(n)``."""
    return bool(re.fullmatch(r"[-+]?[\d,.]+(e[-+]?\d+)?( ± [-+]?[\d,.]+(e[-+]?\d+)?)?( ?%)?( \(\d+\))?", cell))


def to_html(text: str, link: Linker, heading_offset: int = 0, id_prefix: str = "") -> str:
    """``text`` (markdown) as an HTML fragment; headings move down ``heading_offset`` levels (max h6)
    and get ids ``id_prefix + slug(heading)``."""
    lines = text.splitlines()
    out: list[str] = []
    para: list[str] = []
    i = 0

    def flush() -> None:
        if para:
            out.append("<p>" + inline(" ".join(para), link) + "</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        heading = re.match(r"(#{1,6})\s+(.*)", line)
        if not line.strip():
            flush()
        elif heading:
            flush()
            level = min(6, len(heading.group(1)) + heading_offset)
            title = heading.group(2).strip()
            out.append(f'<h{level} id="{html.escape(id_prefix + slug(title))}">{inline(title, link)}</h{level}>')
        elif line.lstrip().startswith("|") and i + 1 < len(lines) and _is_rule(lines[i + 1]):
            flush()
            head = _cells(line)
            i += 2
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            out.append(_table(head, rows, link))
            continue
        elif re.match(r"\s*[-*]\s+", line):
            flush()
            items = []
            while i < len(lines) and re.match(r"\s*[-*]\s+", lines[i]):
                items.append(re.sub(r"^\s*[-*]\s+", "", lines[i]))
                i += 1
                while i < len(lines) and lines[i].startswith("  ") and lines[i].strip() and not re.match(r"\s*[-*]\s+", lines[i]):
                    items[-1] += " " + lines[i].strip()
                    i += 1
            out.append("<ul>" + "".join(f"<li>{inline(it, link)}</li>" for it in items) + "</ul>")
            continue
        else:
            para.append(line.strip())
        i += 1
    flush()
    return "\n".join(out)


def _table(head: list[str], rows: list[list[str]], link: Linker) -> str:
    parts = ['<div class="scroll"><table>', "<thead><tr>"]
    parts += [f"<th>{inline(h, link)}</th>" for h in head]
    parts.append("</tr></thead><tbody>")
    for row in rows:
        row = row + [""] * (len(head) - len(row))
        parts.append("<tr>" + "".join(
            f'<td class="num">{inline(c, link)}</td>' if _numeric(c) else f"<td>{inline(c, link)}</td>"
            for c in row) + "</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)
