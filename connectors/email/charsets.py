"""Bytes and headers of real-world mail as text, never an exception.

Chinese mail is often labelled with a narrower charset than it uses (gb2312
for text with GBK or GB18030 characters, big5 for HKSCS), sometimes not at
all, and header fields carry RFC 2047 encoded words — or raw 8-bit bytes —
in any of these.  Every decoder here falls back instead of raising; bytes
that fit nothing become U+FFFD.
"""
from __future__ import annotations

import base64
import binascii
import codecs
import quopri
import re

# A label as written in mail → the codec that decodes what senders really put under it.
_WIDER = {
    "gb2312": "gb18030", "gb_2312": "gb18030", "gb_2312-80": "gb18030", "euc-cn": "gb18030",
    "euccn": "gb18030", "x-gbk": "gb18030", "gbk": "gb18030", "cp936": "gb18030",
    "windows-936": "gb18030", "hz-gb-2312": "hz",
    "big5": "big5hkscs", "x-big5": "big5hkscs", "big5-hkscs": "big5hkscs", "cp950": "big5hkscs",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949",
    "iso-8859-1": "cp1252", "latin1": "cp1252", "us-ascii": "utf-8", "ascii": "utf-8",
    "shift_jis": "cp932", "x-sjis": "cp932", "unicode-1-1-utf-7": "utf-7",
    "utf8": "utf-8",
}


def codec_for(label: str | None) -> str | None:
    """The Python codec for a charset label, widened where senders mislabel; None if unknown."""
    if not label:
        return None
    name = label.strip().strip('"\'').lower()
    name = _WIDER.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_bytes(data: bytes, label: str | None = None) -> str:
    """Text from bytes in the labelled charset; unlabelled or unknown: UTF-8, else GB18030."""
    codec = codec_for(label)
    if codec is not None and codec != "utf-8":
        try:
            return data.decode(codec, errors="replace")
        except (LookupError, ValueError):  # a codec that cannot even replace (e.g. utf-7 oddities)
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if codec is None:
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError:
            pass
    return data.decode("utf-8", errors="replace")


def unescape_8bit(value: str) -> str:
    """A header value read with surrogateescape (raw 8-bit bytes in the header) as text."""
    if not _ESCAPED.search(value):
        return value
    try:
        return decode_bytes(value.encode("utf-8", errors="surrogateescape"))
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        return value.encode("utf-8", errors="replace").decode("utf-8")


_ESCAPED = re.compile("[\udc80-\udcff]")

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)\s+(?==\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)")


def _word_bytes(encoding: str, payload: str) -> bytes:
    if encoding in "bB":
        payload = re.sub(r"[^A-Za-z0-9+/]", "", payload)
        payload += "=" * (-len(payload) % 4)
        try:
            return base64.b64decode(payload)
        except (binascii.Error, ValueError):
            return b""
    return quopri.decodestring(payload.replace("_", " ").encode("ascii", errors="replace"), header=True)


def decode_header(value: str | None) -> str:
    """A header field as a person reads it: encoded words decoded, folding removed.

    Adjacent encoded words of one charset are joined before decoding, since
    senders split multi-byte characters across them."""
    if not value:
        return ""
    text = unescape_8bit(str(value))
    text = re.sub(r"\r?\n[ \t]+", " ", text)
    if "=?" not in text:
        return text.strip()
    text = _BETWEEN_WORDS.sub(r"\1", text)
    out: list[str] = []
    pos = 0
    pending: list[tuple[str, bytes]] = []  # consecutive words: (charset, bytes)

    def flush() -> None:
        while pending:
            label = pending[0][0]
            chunk = b""
            while pending and pending[0][0] == label:
                chunk += pending.pop(0)[1]
            out.append(decode_bytes(chunk, label))

    for m in _ENCODED_WORD.finditer(text):
        if m.start() > pos:
            flush()
            out.append(text[pos:m.start()])
        label = m.group(1).split("*", 1)[0]  # RFC 2231 language suffix: =?utf-8*en?...
        pending.append((label.lower(), _word_bytes(m.group(2), m.group(3))))
        pos = m.end()
    flush()
    out.append(text[pos:])
    return "".join(out).strip()
