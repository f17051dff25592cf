"""A report's sections as Markdown. Model output is untrusted: every string from the data is escaped so
it can neither break a table (pipes, newlines) nor inject HTML or Markdown links and emphasis."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from evals.report.sections import Section

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]#~])")  # emphasis, code, links, headings, strike


def escape(text: str) -> str:
    """Plain text -> Markdown that renders as exactly that text, on one line (also inside a table cell)."""
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)  # before html.escape, whose entities hold '#'
    text = html.escape(text, quote=True)  # & < > " ' -> entities: no tag, no attribute, no script
    text = text.replace("|", "&#124;")
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "<br>")


def render_markdown(sections: Sequence[Section], title: str) -> str:
    out = [f"# {escape(title)}", ""]
    for s in sections:
        out += [f"## {escape(s.title)}", ""]
        if s.headers:
            out.append("| " + " | ".join(escape(h) for h in s.headers) + " |")
            out.append("|" + "---|" * len(s.headers))
            out += ["| " + " | ".join(escape(c) for c in row) + " |" for row in s.rows]
            out.append("")
        if s.lines:
            out += [escape(line) + "  " for line in s.lines] + [""]
        for heading, items in s.bullets.items():
            out += [f"**{escape(heading)}**", ""] + [f"- {escape(item)}" for item in items] + [""]
    return "\n".join(out).rstrip() + "\n"
