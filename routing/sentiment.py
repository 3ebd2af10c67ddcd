"""How angry a customer's message is: a 0..1 score from a zh/en lexicon.

An angry customer is served sooner (priority up one level) and kept away from
the FAQ bot, so the score must be cheap (it runs on every message) and must
not fire on a polite problem report.  Signals: anger words and insults,
threats (投诉, 报警, 12315, chargeback ...), each made stronger by an
intensifier just before it (太, 非常, so, really) and much weaker by a negation
(不, 没, not, never: "不是骗子", "not a scam"); repeated ! or ?; shouting in
capitals.  The raw sum maps to 0..1 as 1 - exp(-sum / 2.5), so one strong
word or threat alone passes `ANGRY` and milder words need company.
"""
from __future__ import annotations

import math
import re

from routing.text import normalize

ANGRY = 0.5  # anger_score at or above this: the customer is angry

# Weight of each word: 3 is angry on its own, 1-2 needs company.  Chinese
# entries are found anywhere in the text (longest first, so 诈骗 is not also 骗),
# English ones as whole words.
ZH_LEXICON: dict[str, float] = {
    # insults and abuse
    "骗子": 3, "黑店": 3, "傻逼": 3, "他妈": 3, "妈的": 3, "尼玛": 3, "操你": 3, "废物": 3,
    "脑残": 3, "不要脸": 3, "狗屎": 3, "滚蛋": 3, "垃圾": 2, "坑人": 2.5, "坑爹": 2.5, "被坑": 2,
    "骗钱": 3, "骗人": 2.5, "骗我": 2.5, "骗了": 2.5, "诈骗": 3, "欺诈": 3, "奸商": 3, "无耻": 3,
    "恶心": 2, "破店": 2.5, "什么破": 2, "烂透": 2.5,
    # anger and frustration
    "气死": 2.5, "生气": 2, "愤怒": 3, "火大": 2.5, "无语": 1.5, "失望": 1.5, "忍无可忍": 3,
    "受够": 2.5, "离谱": 1.5, "太差": 2, "差劲": 2, "凭什么": 1.5, "搞什么": 2, "到底": 1,
    "什么玩意": 2, "敷衍": 2, "没人理": 1.5, "没人管": 1.5, "没人回": 1.5, "不理人": 1.5,
    "还钱": 2, "退钱": 1.5, "赔偿": 1.5,
    # threats
    "投诉": 2.5, "报警": 3, "消协": 3, "曝光": 2.5, "差评": 2, "举报": 2.5, "起诉": 3,
    "律师": 2.5, "拒付": 2.5, "维权": 2.5, "工商局": 2, "黑猫": 2.5,
}
EN_LEXICON: dict[str, float] = {
    # insults and abuse (pinyin abbreviations too)
    "scam": 3, "scammer": 3, "scammers": 3, "fraud": 3, "thief": 3, "thieves": 3, "stole": 2.5,
    "liar": 3, "liars": 3, "idiot": 3, "idiots": 3, "stupid": 2, "fuck": 3, "fucking": 3, "shit": 3,
    "wtf": 2.5, "damn": 2, "crap": 2, "garbage": 2, "trash": 2, "useless": 2, "incompetent": 2.5,
    "pathetic": 2.5, "disgusting": 2.5, "ripoff": 3, "cheated": 2.5, "cheat": 2.5,
    "sb": 3, "tmd": 3, "nmsl": 3,
    # anger and frustration
    "angry": 2, "furious": 3, "unacceptable": 2.5, "ridiculous": 2, "terrible": 2, "awful": 2,
    "worst": 2.5, "horrible": 2, "joke": 1, "annoyed": 1.5, "disappointed": 1.5, "ignoring": 1.5,
    "ignored": 1.5, "nonsense": 2, "compensation": 1.5,
    # threats
    "12315": 3, "complaint": 2.5, "complain": 2.5, "police": 3, "lawyer": 2.5, "sue": 3,
    "lawsuit": 3, "chargeback": 3, "dispute": 2, "report": 1.5, "reporting": 2, "expose": 2.5, "reviews": 0.5,
}
# Looked for just before a lexicon word: Chinese in its two characters (a
# negating phrase anywhere earlier in its clause: "不是说你们是骗子"), English in
# its four words.
ZH_INTENSIFIERS = "太真特超极简根完实最好这那"
ZH_NEGATIONS = "不没别未无非"
ZH_CLAUSE_NEGATIONS = re.compile("不是|并不|并非|不想|不会|不要|没说|没有说|没打算")
EN_INTENSIFIERS = frozenset("very so really extremely totally absolutely completely such too most".split())
EN_NEGATIONS = frozenset("not no never isn't aren't wasn't don't doesn't didn't won't nothing".split())
_CLAUSE_END = re.compile(r"[,.!?;:,。!?;:\s]")
_ZH_WORDS = re.compile("|".join(sorted(ZH_LEXICON, key=len, reverse=True)))
_EN_WORDS = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_REPEATED = re.compile(r"[!?]{2,}")
_LETTERS = re.compile(r"[A-Za-z]")
_CAPS_WORD = re.compile(r"\b[A-Z]{2,}\b")
_SCALE = 2.5


def _modified(weight: float, before: str | list[str], negations, intensifiers) -> float:
    if any(t in negations for t in before):
        return weight * 0.2
    if any(t in intensifiers for t in before):
        return weight * 1.5
    return weight


def anger_score(text: str) -> float:
    """0 (calm) .. 1 (furious); `ANGRY` and above counts as angry."""
    norm = normalize(text)
    total = 0.0
    for m in _ZH_WORDS.finditer(norm):
        weight = _modified(ZH_LEXICON[m.group()], norm[max(0, m.start() - 2):m.start()],
                           ZH_NEGATIONS, ZH_INTENSIFIERS)
        clause = _CLAUSE_END.split(norm[:m.start()])[-1]
        total += weight * 0.2 if ZH_CLAUSE_NEGATIONS.search(clause) else weight
    tokens = _EN_WORDS.findall(norm)
    for i, tok in enumerate(tokens):
        if weight := EN_LEXICON.get(tok):
            total += _modified(weight, tokens[max(0, i - 4):i], EN_NEGATIONS, EN_INTENSIFIERS)
    emphasis = min(len(_REPEATED.findall(norm)), 2) * 0.5
    letters = _LETTERS.findall(text)
    if len(letters) >= 8 and sum(c.isupper() for c in letters) / len(letters) > 0.6 \
            and len(_CAPS_WORD.findall(text)) >= 2:
        emphasis += 1.5  # SHOUTING
    # Emphasis amplifies what is there; on a calm message it stays below ANGRY.
    total = total * (1 + emphasis / 2) + emphasis
    return 1.0 - math.exp(-total / _SCALE)
