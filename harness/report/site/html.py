"""The frame of every page: head (style sheet, scripts by relative path, so pages open from
`file://`), a navigation bar, the title and the body; and small helpers for escaped text and links."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from harness.report.site.output import PLOTLY_JS


@dataclass(frozen=True)
class Link:
    text: str
    href: str  # relative to the site's root folder


def text(value: object) -> str:
    return escape(str(value))


def anchor(label: str, href: str, external: bool = False) -> str:
    attributes = ' rel="noopener noreferrer" target="_blank"' if external else ""
    return f'<a href="{escape(href, quote=True)}"{attributes}>{escape(label)}</a>'


def page(title: str, body: str, nav: list[Link], depth: int = 0, plots: bool = False, lead: str = "") -> str:
    """A whole page `depth` folders below the site's root; `plots` loads plotly.min.js (before the
    body, whose figures call it as they load)."""
    up = "../" * depth
    scripts = [f'<script src="{up}{PLOTLY_JS}"></script>'] if plots else []
    scripts.append(f'<script src="{up}site.js" defer></script>')
    links = " ".join(anchor(link.text, up + link.href) for link in nav)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{text(title)}</title>"
        f"<link rel=\"stylesheet\" href=\"{up}site.css\">{''.join(scripts)}</head>\n"
        f"<body><nav>{links}</nav>\n<main><h1>{text(title)}</h1>\n"
        + (f"<p class=\"lead\">{lead}</p>\n" if lead else "")
        + f"{body}\n</main></body></html>\n"
    )


def section(heading: str, *parts: str, level: int = 2) -> str:
    return f"<section><h{level}>{text(heading)}</h{level}>\n" + "\n".join(parts) + "</section>\n"


def note(content: str) -> str:
    """A paragraph of already escaped HTML."""
    return f'<p class="note">{content}</p>'
