"""HTML mail as the text a person sees: safe to show, nothing executed.

Scripts, styles and the head are dropped, entities decoded, block elements
become line breaks, a link keeps its address as text ("text (https://…)"),
and quoted history — `<blockquote>`, Gmail's `gmail_quote`, Outlook's
reply header, QQ Mail's and 163's quote containers — comes out as "> " lines,
which quote cutting (quotes.py) then removes like any other quote.
"""
from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

_SKIP = {"script", "style", "head", "title", "template", "noscript", "object", "svg", "math", "iframe"}
_BLOCK = {"p", "div", "section", "article", "header", "footer", "table", "tr", "ul", "ol", "dl", "dt",
          "dd", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "address", "center", "form", "fieldset",
          "blockquote", "hr", "figure", "figcaption", "main", "nav", "aside", "tbody", "thead", "tfoot"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "embed", "source", "track", "wbr"}
# Containers clients put the quoted original in.
_QUOTE_CLASSES = re.compile(r"gmail_quote|yahoo_quoted|moz-cite-prefix|protonmail_quote|"
                            r"divRplyFwdMsg|appendonsend|ntes-mailmaster-quote|qmbox|"
                            r"x_divRplyFwdMsg|OutlookMessageHeader|mail-quote", re.I)


class _TextBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.line: list[str] = []
        self.skip_depth = 0
        self.pre_depth = 0
        self.quote_depth = 0
        self.open: list[tuple[str, bool]] = []  # open elements: (tag, whether it starts a quote)
        self.links: list[str | None] = []
        self.link_text: list[str] = []

    # -- lines ------------------------------------------------------------------
    def _break(self) -> None:
        """End the current line (nothing if it is empty)."""
        text = "".join(self.line)
        if not self.pre_depth:
            text = re.sub(r"[ \t\r\n\f\xa0]+", " ", text).strip()
        else:
            text = text.replace("\xa0", " ").rstrip()
        if text:
            self.lines.append("> " * self.quote_depth + text)
        self.line = []

    def _blank(self) -> None:
        """A paragraph break: one empty line, never two."""
        self._break()
        if self.lines and self.lines[-1] != "":
            self.lines.append("")

    def _emit(self, text: str) -> None:
        if self.skip_depth:
            return
        if self.links:
            self.link_text.append(text)
        if self.pre_depth:
            parts = text.split("\n")
            for i, part in enumerate(parts):
                if i:
                    self._break()
                self.line.append(part)
        else:
            self.line.append(text)

    # -- parser callbacks ---------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag in _SKIP:
            if tag not in _VOID:
                self.skip_depth += 1
            return
        if self.skip_depth:
            return
        if tag == "br" and not "".join(self.line).strip():
            self._blank()
        elif tag == "p":
            self._blank()
        elif tag in _BLOCK or tag in ("li", "br"):
            self._break()
        if tag == "li":
            self.line.append("- ")
        elif tag in ("td", "th"):
            self.line.append(" ")
        elif tag == "pre":
            self.pre_depth += 1
        elif tag == "a":
            self.links.append(attr.get("href", "").strip())
            self.link_text = []
        elif tag == "img":
            alt = attr.get("alt", "").strip()
            if alt:
                self._emit(f"[{alt}]")
        if tag not in _VOID:
            starts_quote = tag == "blockquote" or bool(
                _QUOTE_CLASSES.search(attr.get("class", "") + " " + attr.get("id", "")))
            self.open.append((tag, starts_quote))
            if starts_quote:
                self._break()
                self.quote_depth += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            if tag not in _VOID and self.skip_depth:
                self.skip_depth -= 1
            return
        if self.skip_depth or tag in _VOID:
            return
        if tag == "a" and self.links:
            href = self.links.pop()
            shown = "".join(self.link_text).strip()
            target = href[7:] if href.lower().startswith("mailto:") else href
            if target and re.match(r"(?i)(https?://|ftp://|[^@\s/]+@)", target) and target not in shown:
                self.line.append(f" ({target})")
        if tag == "p":
            self._blank()
        elif tag in _BLOCK or tag == "li":
            self._break()
        if tag == "pre" and self.pre_depth:
            self.pre_depth -= 1
        if any(t == tag for t, _ in self.open):  # close it and whatever was left open inside
            while self.open:
                t, quote = self.open.pop()
                if quote:
                    self._break()
                    self.quote_depth = max(0, self.quote_depth - 1)
                if t == tag:
                    break

    def handle_data(self, data: str) -> None:
        self._emit(data)

    def text(self) -> str:
        self._break()
        return "\n".join(self.lines).strip("\n")


def html_to_text(html: str) -> str:
    """The visible text of an HTML document (or fragment)."""
    builder = _TextBuilder()
    try:
        builder.feed(html)
        builder.close()
        return builder.text()
    except Exception:  # html.parser gives up on some broken markup: fall back to stripping tags
        stripped = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", " ", html)
        stripped = re.sub(r"(?i)<br\s*/?>|</p\s*>|</div\s*>", "\n", stripped)
        stripped = unescape(re.sub(r"<[^>]*>", " ", stripped))
        return "\n".join(re.sub(r"[ \t\xa0]+", " ", line).strip() for line in stripped.splitlines()).strip()
