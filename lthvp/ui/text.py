"""Untrusted text (user names, URL values, file and member names) inside Markdown elements."""

from __future__ import annotations

PUNCTUATION = set("\\`*_{}[]()<>#+-.!|~:$&\"'=^/%@,;?")


def plain(text, limit: int = 64) -> str:
    """Text shown as typed inside a Markdown element (st.success, st.warning ...): one line, bounded,
    every ASCII punctuation mark backslash-escaped, so no link, image, emphasis, directive or HTML forms."""
    text = " ".join(str(text).split())[:limit]
    return "".join("\\" + c if c in PUNCTUATION else c for c in text)
