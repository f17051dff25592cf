"""A report's sections as Markdown. Model output is untrusted: every string from the data is escaped so
it can neither break a table (pipes, newlines) nor inject HTML or Markdown links and emphasis."""

from __future__ import annotations

import re
from collections.abc import Sequence

from evals.report.sections import Section

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]#~|])")  # emphasis, code, links, headings, strike, table cells
_ENTITY = re.compile(r"&(?=#?\w+;)")  # an '&' that would start an HTML entity (&amp; &#60;); any other reads as is


def escape(text: str) -> str:
    """Plain text -> Markdown that renders as exactly that text, on one line (also inside a table cell), and
    still reads as plain text: only what Markdown would act on is escaped (no tag, link, emphasis, entity or
    cell break can come from the data); quotes and a lone '&' stay as they are."""
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    text = _ENTITY.sub("&amp;", text).replace("<", "&lt;").replace(">", "&gt;")
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
