"""One HTML page from gathered runs or a tables folder: no scripts, no network, every text escaped.

Images up to :data:`EMBED_MAX` bytes are embedded as base64 data URIs while the page's embedded
total stays under :data:`EMBED_BUDGET`; the rest are relative links (they resolve while the report
stays in the tree it describes). Folders of many frames show an evenly spaced sample.
"""
from __future__ import annotations

import base64
import html
import os
import time
import urllib.parse
from pathlib import Path

from predvis.report.gather import Folder
from predvis.report.markdown import slug, to_html

EMBED_MAX = 2_000_000        # bytes: a bigger image is linked, not embedded
EMBED_BUDGET = 40_000_000    # bytes of images embedded in one page at most
SAMPLE = 8                   # frames shown of a frames/ folder that holds more
SAMPLE_OTHER = 24            # images shown of any other folder that holds more
MAX_FILES = 30               # links to a folder's small result files at most
TRAIN_ROWS = 5               # last rows of metrics/train.csv shown when a run has no loss plot
DISPLAY = (560, 360)         # pixels: a smaller image is shown enlarged by a whole factor up to this box
MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
main{max-width:1400px;margin:0 auto;padding:16px 24px 64px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:19px;margin:28px 0 6px;padding-top:8px;border-top:2px solid #ccd}
h3{font-size:16px;margin:18px 0 6px}h4,h5,h6{font-size:14px;margin:14px 0 4px}
.muted{color:#667}.path{font:12px ui-monospace,monospace;color:#556;word-break:break-all}
code,pre{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
pre{background:#f0f0f3;padding:8px;overflow:auto;max-height:420px;border-radius:4px}
code{background:#eef;padding:0 3px;border-radius:3px}td code{white-space:nowrap}.nb{white-space:nowrap}td code:has(.nb){white-space:normal}
.scroll{overflow-x:auto;margin:6px 0 10px}
table{border-collapse:collapse;font-size:13px;background:#fff}
th,td{border:1px solid #d4d4dc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#eceef4;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:nth-child(even){background:#f7f7fa}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0}
dl.facts dt{color:#556}dl.facts dd{margin:0}
.badge{display:inline-block;font-size:12px;padding:1px 7px;border-radius:9px;background:#dde;vertical-align:middle;margin-left:6px}
.done{background:#cfe9d4}.diverged,.interrupted,.failed{background:#f6d2cf}.running{background:#f3e6bd}
.grid{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}
figure{margin:0;background:#fff;border:1px solid #dde;padding:4px;border-radius:4px;max-width:100%}
figure img{display:block;max-width:100%;image-rendering:pixelated;min-width:96px}
figure.plot img{image-rendering:auto}   /* plots at their own size (at most the page width), smoothed */
figcaption{font-size:11px;color:#556;word-break:break-all;max-width:320px}
section.probe{margin-left:14px;padding-left:12px;border-left:3px solid #dde}
nav.toc{background:#fff;border:1px solid #dde;border-radius:4px;padding:6px 14px;font-size:13px}
nav.toc ul{margin:2px 0;padding-left:18px}nav.files ul{padding:0}nav.files li{display:inline-block;margin-right:14px}
"""


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of a PNG or GIF read from its header, or None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(32)
    except OSError:
        return None
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:4] == b"GIF8" and len(head) >= 10:
        return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    return None


# one line on what each probe output holds (docs/probes.md defines them)
KINDS = {
    "predict": "held-out test sequences: posterior reconstruction and prior prediction against baselines; "
               "frames and GIFs show input, reconstruction and prediction",
    "dream": "closed loop: after priming on real frames the model is fed its own predictions",
    "lesion": "per-layer prediction error, intact against pathways switched off, on the same held-out frames",
    "occlude": "a hidden region of every frame: fill-in error of the intact and lesioned model",
    "sleep": "dreams and held-out error before and after unlearning the dreams' attractors",
    "deepdream": "images optimised to excite a layer of a classifier",
}


class Page:
    """An HTML page being written to ``out``: relative links, image embedding, anchors of runs."""

    def __init__(self, out: Path, title: str):
        self.out = Path(out).resolve()
        self.title = title
        self.embedded = 0
        self.linked_images = 0
        self.anchors: dict[Path, str] = {}     # resolved folder -> id of its section
        self.parts: list[str] = []

    # ------------------------------------------------------------------ links and images

    def rel(self, target: Path) -> str:
        return urllib.parse.quote(os.path.relpath(Path(target).resolve(), self.out.parent))

    def image_src(self, path: Path) -> str:
        size = path.stat().st_size
        if size <= EMBED_MAX and self.embedded + size <= EMBED_BUDGET:
            self.embedded += size
            data = base64.b64encode(path.read_bytes()).decode()
            return f"data:{MIME.get(path.suffix.lower(), 'application/octet-stream')};base64,{data}"
        self.linked_images += 1
        return self.rel(path)

    def figure(self, path: Path, caption: str, plot: bool = False) -> str:
        cls = ' class="plot"' if plot else ""
        size = image_size(path)
        width = ""
        if size is not None and not plot:   # small frames scaled up by a whole factor, pixels kept sharp
            scale = max(1, min(8, DISPLAY[0] // max(1, size[0]), DISPLAY[1] // max(1, size[1])))
            width = f' width="{size[0] * scale}"'
        return (f'<figure{cls}><img{width} src="{html.escape(self.image_src(path), quote=True)}" '
                f'alt="{html.escape(caption, quote=True)}"><figcaption>{html.escape(caption)}</figcaption></figure>')

    def anchor_or_file(self, target: Path) -> str | None:
        """An href for a run or file the page shows (its section) or that exists on disk; None otherwise."""
        target = Path(target).resolve()
        if target in self.anchors:
            return "#" + self.anchors[target]
        report = target / "report.html"
        if target.is_dir() and report.is_file():
            return self.rel(report)
        if target.is_file():
            return self.rel(target)
        return None

    def linker(self, base: Path):
        """Resolve markdown link targets written relative to ``base``: web links kept, files that exist
        linked relatively, anything else shown as text."""
        def link(target: str) -> str | None:
            if target.startswith(("http://", "https://")):
                return target
            if target.startswith("#"):
                return None
            return self.anchor_or_file(Path(base) / urllib.parse.unquote(target.split("#")[0]))
        return link

    # ------------------------------------------------------------------ page

    def html(self, body: str, subtitle: str = "") -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M")
        sub = f'<p class="muted">{html.escape(subtitle)}</p>' if subtitle else ""
        note = (f'<p class="muted">{self.linked_images} image(s) over the embedding limit are linked, not embedded: '
                "keep this file inside the folder it describes.</p>") if self.linked_images else ""
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{html.escape(self.title)}</title>"
                f"<style>{CSS}</style></head><body><main><h1>{html.escape(self.title)}</h1>{sub}"
                f'<p class="muted">written by <code>predvis report</code> on {stamp}</p>{note}{body}</main></body></html>\n')


# ---------------------------------------------------------------------- runs

def anchor_id(f: Folder) -> str:
    return slug(f"{f.kind}-{f.path.parent.name}-{f.path.name}")


def register(page: Page, folders: list[Folder]) -> None:
    for f in folders:
        page.anchors[f.path.resolve()] = anchor_id(f)
        register(page, f.children)


def toc(page: Page, runs: list[Folder]) -> str:
    items = []
    for r in runs:
        kids = "".join(f'<li><a href="#{anchor_id(c)}">{html.escape(c.kind)} {html.escape(c.run_id)}</a></li>'
                       for c in r.children)
        items.append(f'<li><a href="#{anchor_id(r)}">{html.escape(r.name)}</a>{_badge(r)}'
                     + (f"<ul>{kids}</ul>" if kids else "") + "</li>")
    return f'<nav class="toc"><strong>Contents</strong><ul>{"".join(items)}</ul></nav>'


def _badge(f: Folder) -> str:
    state = str(f.status.get("state", "")) if f.status else ""
    if not state:
        return ""
    epochs = f" {f.status['epoch']}/{f.status['epochs']} epochs" if "epoch" in f.status and "epochs" in f.status else ""
    return f'<span class="badge {html.escape(state)}">{html.escape(state + epochs)}</span>'


def _facts(f: Folder) -> str:
    cfg, env = f.config_dict(), f.env
    model = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    git = env.get("git") if isinstance(env.get("git"), dict) else {}
    commit = (git.get("commit") or "")[:10] + (" (uncommitted changes)" if git.get("dirty") else "")
    train = cfg.get("train") if isinstance(cfg.get("train"), dict) else {}
    rows = [
        ("experiment", cfg.get("name")), ("method", cfg.get("method")),
        ("model", model.get("kind")), ("profile", cfg.get("profile") or env.get("profile")),
        ("seed", cfg.get("seed") if "seed" in cfg else env.get("seed")),
        ("epochs", train.get("epochs")), ("mode", cfg.get("mode")),
        ("created", env.get("created")), ("commit", commit or None),
        ("device", " / ".join(str(env[k]) for k in ("device", "device_name", "threads") if env.get(k) is not None) or None),
        ("software", " ".join(f"{k} {env[k]}" for k in ("python", "torch") if env.get(k)) or None),
    ]
    body = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in rows if v not in (None, ""))
    return f'<dl class="facts">{body}</dl>' if body else ""


def _loss(page: Page, f: Folder) -> str:
    from predvis.run import read_csv

    train = f.path / "metrics" / "train.csv"
    if not train.exists():
        return ""
    plots = [p for p in f.images.get("plots", []) if p.name == "loss.png"]
    if plots:
        return "<h3>Loss</h3>" + page.figure(plots[0], "plots/loss.png", plot=True)
    rows = read_csv(train)
    if not rows:
        return '<h3>Loss</h3><p class="muted">no loss plot; metrics/train.csv has no rows yet.</p>'
    keys = list(rows[0])
    shown = rows[-TRAIN_ROWS:]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f'<td class="num">{html.escape(str(r.get(k, "")))}</td>' for k in keys) + "</tr>"
                   for r in shown)
    return ("<h3>Loss</h3>"
            f'<p class="muted">no loss plot (plots/loss.png) in this run; the last {len(shown)} of {len(rows)} '
            "rows of metrics/train.csv:</p>"
            f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')


def _sample(files: list[Path], n: int) -> list[Path]:
    """``n`` of ``files``, evenly spaced, the first and the last among them."""
    if len(files) <= n:
        return files
    step = (len(files) - 1) / (n - 1)
    return [files[round(i * step)] for i in range(n)]


def _figures(page: Page, f: Folder) -> str:
    parts = []
    for folder, files in f.images.items():
        files = [p for p in files if not (folder == "plots" and p.name == "loss.png")]
        if not files:
            continue
        shown = _sample(files, SAMPLE if folder == "frames" else SAMPLE_OTHER)
        note = (f' <span class="muted">({len(shown)} of {len(files)}, evenly spaced)</span>'
                if len(shown) < len(files) else "")
        title = folder or "images"
        figs = "".join(page.figure(p, str(p.relative_to(f.path)), plot=(folder == "plots")) for p in shown)
        parts.append(f"<h4>{html.escape(title)}/{note}</h4><div class=\"grid\">{figs}</div>")
    return ("<h3>Figures</h3>" + "".join(parts)) if parts else ""


def _tables(page: Page, f: Folder) -> str:
    out = []
    for t in f.tables:
        text = t.read_text(errors="replace")
        prefix = anchor_id(f) + "-" + slug(t.stem) + "-"
        if not text.lstrip().startswith("#"):
            out.append(f"<h4>{html.escape(t.name)}</h4>")
        out.append(to_html(text, page.linker(t.parent), heading_offset=3, id_prefix=prefix))
    return ("<h3>Tables</h3>" + "".join(out)) if out else ""


def _files(page: Page, f: Folder) -> str:
    if not f.data:
        return ""
    links = ", ".join(f'<a href="{html.escape(page.rel(p), quote=True)}">{html.escape(str(p.relative_to(f.path)))}</a>'
                      for p in f.data[:MAX_FILES])
    more = f" and {len(f.data) - MAX_FILES} more in the folder" if len(f.data) > MAX_FILES else ""
    return f'<p class="muted">files: {links}{html.escape(more)}</p>'


def _settings(f: Folder) -> str:
    out = []
    if f.config:
        out.append(f"<details><summary>config.yaml</summary><pre>{html.escape(f.config)}</pre></details>")
    for name, text in f.settings.items():
        out.append(f"<details><summary>{html.escape(name)}</summary><pre>{html.escape(text)}</pre></details>")
    if f.summary is not None and not f.tables:
        import json

        text = json.dumps(f.summary, indent=1, default=str)
        text = text if len(text) <= 6000 else text[:6000] + "\n..."
        out.append(f"<details open><summary>summary.json</summary><pre>{html.escape(text)}</pre></details>")
    return "".join(out)


def _related(page: Page, f: Folder, made_from: dict[Path, list[Folder]]) -> str:
    parts = []
    for src in f.sources:
        href = page.anchor_or_file(src)
        label = html.escape(f"{src.parent.name}/{src.name}")
        parts.append(f'made from <a href="{html.escape(href, quote=True)}">{label}</a>' if href
                     else f"made from <code>{label}</code> (not in this report)")
    for other in made_from.get(f.path.resolve(), []):
        parts.append(f'made from this run: <a href="#{anchor_id(other)}">{html.escape(other.name)}</a>')
    return f"<p>{'; '.join(parts)}</p>" if parts else ""


def section(page: Page, f: Folder, made_from: dict[Path, list[Folder]], level: int = 2) -> str:
    title = f.name if f.kind == "run" else f"{f.kind} {f.run_id}"
    cls = "run" if f.kind == "run" else "probe"
    cmd = f"<p>command: <code>{html.escape(f.cmd.strip())}</code></p>" if f.cmd else ""
    what = KINDS.get(f.kind if f.kind != "run" else f.path.parent.name.rsplit("-", 1)[-1])
    what = f'<p class="muted">{html.escape(what)}.</p>' if what else ""
    body = [f'<section class="{cls}" id="{anchor_id(f)}"><h{level}>{html.escape(title)}{_badge(f)}</h{level}>',
            f'<p class="path">{html.escape(str(f.path))}</p>', what, _related(page, f, made_from), _facts(f) if f.kind == "run" else "",
            cmd, _settings(f), _loss(page, f), _tables(page, f), _figures(page, f), _files(page, f)]
    if f.children:
        body.append(f"<h3>Probe outputs ({len(f.children)})</h3>")
        body += [section(page, c, made_from, level=min(level + 1, 4)) for c in f.children]
    body.append("</section>")
    return "".join(body)


def runs_page(page: Page, runs: list[Folder]) -> str:
    register(page, runs)
    made_from: dict[Path, list[Folder]] = {}
    for r in runs:
        for src in r.sources:
            made_from.setdefault(src.resolve(), []).append(r)
    overview = ""
    if len(runs) > 1:
        rows = []
        for r in runs:
            cfg = r.config_dict()
            kinds = sorted({c.kind for c in r.children})
            rows.append(f'<tr><td><a href="#{anchor_id(r)}">{html.escape(r.name)}</a></td>'
                        f"<td>{html.escape(str(r.status.get('state', '-')))}</td>"
                        f"<td>{html.escape(str(cfg.get('seed', '-')))}</td>"
                        f"<td>{html.escape(', '.join(kinds) or '-')}</td></tr>")
        overview = ("<h2>Runs</h2><div class=\"scroll\"><table><thead><tr><th>run</th><th>status</th><th>seed</th>"
                    f"<th>probe outputs</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
    body = [toc(page, runs), overview] + [section(page, r, made_from) for r in runs]
    return "".join(body)


# ---------------------------------------------------------------------- tables folder

def tables_page(page: Page, folder: Path) -> str:
    """Every markdown file of ``folder``, README.md first; links between them become in-page links."""
    folder = Path(folder).resolve()
    files = sorted(folder.glob("*.md"), key=lambda p: (p.name != "README.md", p.name))
    ids = {p.resolve(): "t-" + slug(p.stem) for p in files}
    nav = "".join(f'<li><a href="#{ids[p.resolve()]}">{html.escape(p.name)}</a></li>' for p in files)

    def link(target: str) -> str | None:
        if target.startswith(("http://", "https://")):
            return target
        path = (folder / urllib.parse.unquote(target.split("#")[0])).resolve()
        if path in ids:
            return "#" + ids[path]
        if path.suffix == ".md" and (path.parent / "index.html").is_file() and path.name == "README.md":
            return page.rel(path.parent / "index.html")
        return page.anchor_or_file(path)

    parts = [f'<nav class="toc files"><strong>Files</strong><ul>{nav}</ul></nav>']
    for p in files:
        parts.append(f'<section id="{ids[p.resolve()]}"><h2>{html.escape(p.name)}</h2>')
        parts.append(to_html(p.read_text(errors="replace"), link, heading_offset=2, id_prefix=ids[p.resolve()] + "-"))
        parts.append("</section>")
    return "".join(parts)
