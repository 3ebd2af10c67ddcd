"""What the customer wrote this time, without the history their client quoted.

Mail clients append the previous messages under a header line — Gmail's
"On … wrote:" / "在 … 写道：", 163's "At … wrote:", Outlook's "-----Original
Message-----" or a From/Sent/To block (发件人/发送时间/收件人 in Chinese
Outlook, QQ Mail and Foxmail's "------------------ 原始邮件 ------------------")
— and mark quoted lines with ">".  Signatures start at "-- " (RFC 3676) or
are a phone client's footer.  Everything from the first history header on
is history; ">" lines elsewhere are dropped, so answers written between
quotes (bottom- or inline-posting) are kept.
"""
from __future__ import annotations

import re

# One line (or a few joined, as clients wrap long ones) that introduces quoted history.
_WROTE = re.compile(  # a date in it: "On the site, support wrote:" is no header
    r"^(?=.*\d)\s*(?:On\b.{0,300}\bwrote|At\b.{0,300}\bwrote|Le\b.{0,300}\ba écrit|Am\b.{0,300}\bschrieb)\s*:\s*$"
    r"|^(?=.*\d)\s*(?:在|於|于).{0,300}(?:写道|寫道)\s*[:：]\s*$", re.I | re.S)
_SEPARATOR = re.compile(  # QQ Mail writes "&nbsp;" into the plain text of its separator
    r"^\s*(?:-{2,}(?:\s|&nbsp;)*(?:Original Message|Forwarded message|原始邮件|原始郵件|Original|回复的原邮件|"
    r"转发的邮件)(?:\s|&nbsp;)*-{2,}|_{20,}|={20,})\s*$", re.I)
# Header blocks of Outlook and the Chinese clients: a From line with a date line soon after.
_FROM = re.compile(r"^\s*\**\s*(?:From|发件人|寄件者|發件人)\s*\**\s*[:：]", re.I)
_DATE = re.compile(r"^\s*\**\s*(?:Sent|Date|发送时间|發送時間|寄件日期|日期|时间|時間)\s*\**\s*[:：]", re.I)
_SIGNATURE = re.compile(r"^-- ?$")
_FOOTER = re.compile(
    r"^\s*(?:Sent from my (?:iPhone|iPad|Android|Huawei|Xiaomi|mobile)\b.*|Sent from (?:Mail|Outlook) for \w+.*"
    r"|Get Outlook for (?:iOS|Android).*|发自我的\s*(?:iPhone|iPad|手机|华为手机|小米手机).*|从我的\s*iPhone\s*发送"
    r"|发自网易邮箱大师|发自(?:QQ)?邮箱(?:app)?|來自我的\s*iPhone|Sent with Proton Mail.*)\s*$", re.I)


def _history_start(lines: list[str]) -> int | None:
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(">"):
            continue
        if _SEPARATOR.match(line):
            return i
        for span in (1, 2, 3):  # "On Mon, 1 Jan 2024 at 10:00, Name <\nname@x> wrote:"
            joined = " ".join(part.strip() for part in lines[i:i + span])
            if _WROTE.match(joined):
                return i
        if _FROM.match(line) and any(_DATE.match(later) for later in lines[i + 1:i + 5]):
            return i
    return None


def cut_quoted(text: str) -> tuple[str, str]:
    """(what the sender wrote now, what was cut: history, quotes and signature).

    When cutting would leave nothing (someone who only forwarded, or wrote
    below a header we took for history), the whole text is kept."""
    lines = text.split("\n")
    cut: list[str] = []
    start = _history_start(lines)
    if start is not None:
        cut = lines[start:]
        lines = lines[:start]
    for i, line in enumerate(lines):
        if _SIGNATURE.match(line):
            cut = lines[i:] + cut
            lines = lines[:i]
            break
    kept: list[str] = []
    quoted: list[str] = []
    for line in lines:
        (quoted if line.lstrip().startswith(">") else kept).append(line)
    while kept and (not kept[-1].strip() or _FOOTER.match(kept[-1])):
        cut.insert(0, kept.pop())
    reply = "\n".join(kept).strip()
    if not reply:
        return text.strip(), ""
    return reply, "\n".join(quoted + cut).strip()
