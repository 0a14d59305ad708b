"""A Markdown report as one self-contained HTML page: no script, no raw HTML, no remote content.

The Markdown is rendered with markdown-it-py (CommonMark plus tables; it comes with rich, which
the workspace already installs) with raw HTML off, so any `<` in the text is escaped, and links
keep markdown-it's URL check (no `javascript:`). The page's only style is inline CSS; a server
should send it with `PAGE_CSP`, which forbids everything else.
"""

from __future__ import annotations

import html

from markdown_it import MarkdownIt

__all__ = ["PAGE_CSP", "markdown_page"]

# Nothing but the page's own inline style: no script, image, font, frame or connection.
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")
_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; color: #1f2328; margin: 2rem auto; max-width: 68rem;
       padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: .6rem 0 1.2rem; }
th, td { border: 1px solid #d0d7de; padding: .25rem .6rem; vertical-align: top; }
th { background: #f6f8fa; } td { font-variant-numeric: tabular-nums; }
code { font-size: .9em; }
"""


def markdown_page(markdown: str, title: str) -> str:
    body = _MARKDOWN.render(markdown)
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
    )
