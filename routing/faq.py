"""The FAQ bot's retrieval: which entry a customer's message asks, and whether to answer it.

Entries come from config.yaml's `faq:` (SPEC "The FAQ bot").  A message is
matched by BM25 over every question of every entry, in both languages
(routing/text.py: Chinese words and character pairs, English stems), each
entry's questions of one language taken together as one document (a word
several of its questions share counts more).  The best entry's score is made
comparable across messages:

    score    = min(coverage, margin)
    coverage = BM25(message, best entry) / BM25(message, itself)
    margin   = 1 - BM25(message, runner-up entry) / BM25(message, best entry)

so a message whose words are all in one entry and in no other scores near 1,
while words the FAQ has never seen ("今天天气怎么样") or words two entries share
("卡密") pull it down.  The bot answers only at `CONFIDENCE` or above, a
threshold chosen on the held-out set routing/data/faq_heldout.tsv for
precision ≥ 0.95 (bench/bot.py prints precision and coverage;
tests/test_faq.py holds them).

Some messages are never answered from the FAQ whatever they match (SPEC): one
naming an order number, a complaint or an angry one, small talk, a statement
that is not a question, a problem with one specific order or payment.  They
still get their best entry and score (for `kefu faq test`), with `reason`
saying why the bot stays silent.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routing.sentiment import ANGRY, anger_score
from routing.text import is_chinese, language as detect_language, normalize, runs, terms

# Answer at or above this score.  On routing/data/faq_heldout.tsv the lowest threshold
# with precision ≥ 0.95 is 0.30 (precision 0.96, coverage 0.82); 0.35 keeps a margin
# for wordings the set lacks (precision 0.98, coverage 0.79).
CONFIDENCE = 0.35

QUESTION_MAX_CHARS = 160  # a longer message tells a story: not a routine question
_K1 = 1.2
_B = 0.75


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FaqQuestions(_Strict):
    zh: list[str] = []
    en: list[str] = []


class FaqAnswer(_Strict):
    zh: str | None = None
    en: str | None = None

    @model_validator(mode="after")
    def _one(self) -> "FaqAnswer":
        if not (self.zh or self.en):
            raise ValueError("give the answer in zh, en or both")
        return self


class FaqEntry(_Strict):
    """One routine question: the ways buyers ask it, and the bot's answer."""
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    questions: FaqQuestions
    answer: FaqAnswer

    @model_validator(mode="after")
    def _asked(self) -> "FaqEntry":
        if not (self.questions.zh or self.questions.en):
            raise ValueError("list at least one question (questions.zh or questions.en)")
        return self


@dataclass(frozen=True, slots=True)
class FaqMatch:
    """The best entry for a message; `answer` only when `confident`."""
    entry_id: str  # "" when nothing matched at all
    score: float  # 0..1, comparable across messages
    confident: bool  # the bot should answer
    answer: str  # the entry's answer in `language` ("" unless confident)
    language: str  # "zh" | "en": the message's, else the matched question's
    reason: str = ""  # why not confident: too_long, order_number, complaint, small_talk,
    #                   order_problem, not_a_question, low_score, no_match


# -- messages the FAQ must not answer -------------------------------------------------
# An order number: after 订单/单号/order (4-32 letters, digits, - or _, with a digit), or
# anywhere dujiaoka's 16 upper-case letters and digits, or 10-24 digits (not a phone number).
_ORDER_NO = re.compile(
    r"(?:订单号?|单号|order\s*(?:no\.?|number|#)?)\s*[::#]?\s*(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{4,32}"
    r"|(?<![A-Za-z0-9])(?=[A-Z0-9]*\d)[A-Z0-9]{16}(?![A-Za-z0-9])"
    r"|(?<![A-Za-z0-9])[A-Za-z]{0,4}(?!1[3-9]\d{9}(?!\d))\d{10,24}(?![A-Za-z0-9])", re.IGNORECASE)
_COMPLAINT = re.compile(r"投诉|差评|举报|complain|complaint|report you", re.IGNORECASE)
_SMALL_TALK = re.compile(
    r"(?:你好|您好|在吗|在不在|在么|有人吗|谢谢|多谢|感谢|好的|好滴|嗯|哦|哈|ok|okay|收到|明白|知道了|拜拜|再见"
    r"|早上好|晚上好|早|晚安|辛苦了|你是机器人吗|你是谁|你叫什么名字|转人工|人工|人工客服|真人"
    r"|hi|hello|hey|thanks?|thank you|thx|ty|bye|goodbye|good (?:morning|evening|night)|yes|no|sure|cool"
    r"|got it|are you a bot|who are you|human|agent|a person|real person|please|there|a lot|very much|[\s\W])+",
    re.IGNORECASE)
_QUESTION = re.compile(
    r"[??]|吗|么|呢|怎|如何|哪|什么|啥|几|多久|多长|多少|是否|能否|可否|能不能|可不可以|有没有|是不是|会不会|要不要"
    r"|请问|想问|想知道|咨询|\b(?:how|what|where|when|which|why|who|whom)\b"
    r"|(?:^|[,.;!:]\s*)(?:can|could|do|does|did|is|are|will|would|should|may|any|is there|are there)\b",
    re.IGNORECASE)
_FIRST_PERSON = re.compile(r"我|\b(?:i|i'm|i've|my|me|we|our)\b", re.IGNORECASE)
_WANTS = re.compile(r"我?(?:想|要|想要|需要|打算)|\b(?:i|we)(?:'d| would)? (?:want|like|need|wish)\b",
                    re.IGNORECASE)
# One order or payment gone wrong, or an action wanted on one: a person's case.
_ORDER_PROBLEM = re.compile(
    r"(?:没|未|还没|没有|一直没|迟迟没|不)(?:有)?(?:收到|到账|到|发货|发|显示|生效|反应)|用不了|不能用|不好用|无法|失败"
    r"|无效|错误|报错|不对|已被|被用|已使用|已兑换|过期|扣了|扣款|扣钱|多扣|重复|付了|付过|付款了|已付|已经付|已支付"
    r"|显示未|却|但是|可是|怎么还|为什么还|(?:我要|给我|帮我|申请了?)(?:退款|退钱|退货|补发|换|取消)"
    r"|\b(?:not|never|no longer|didn't|did not|haven't|have not|hasn't|has not|doesn't|does not|won't|isn't|can't"
    r"|cannot)\b[^,.;!?]{0,40}\b(?:receiv|arriv|work|deliver|show|get|got|come|came|activ|redeem)"
    r"|\b(?:invalid|expired|already (?:used|redeemed)|failed|declined|charged|twice|refund (?:me|now)"
    r"|want (?:a|my) refund|money back|still (?:not|no|waiting|nothing)|but)\b", re.IGNORECASE)


def refusal(text: str) -> str:
    """Why the FAQ must not answer this message ("" if it may)."""
    if len(text) > QUESTION_MAX_CHARS:
        return "too_long"
    if _ORDER_NO.search(text):
        return "order_number"
    if _COMPLAINT.search(text) or anger_score(text) >= ANGRY:
        return "complaint"
    if _SMALL_TALK.fullmatch(normalize(text)):
        return "small_talk"
    if _ORDER_PROBLEM.search(text):
        return "order_problem"
    if not _is_question(text):
        return "not_a_question"
    return ""


def _is_question(text: str) -> bool:
    """A question, a request ("我想开发票"), or a short keyword query ("退款政策", "invoice")."""
    if _QUESTION.search(text) or _WANTS.search(text):
        return True
    if _FIRST_PERSON.search(text):
        return False  # "我刚充值了", "I ordered yesterday": telling, not asking
    chars = sum(len(r) if is_chinese(r) else 3 for r in runs(normalize(text)))  # an English word ≈ 3
    return chars <= 12


# -- retrieval ------------------------------------------------------------------------
class FaqIndex:
    """BM25 over the entries' questions; built again when the config changes."""

    def __init__(self, entries: list[FaqEntry], threshold: float = CONFIDENCE):
        self.entries = {e.id: e for e in entries}
        self.threshold = threshold
        self._owner: list[str] = []  # document (an entry's questions in one language) → entry id
        self._lang: list[str] = []
        self._length: list[int] = []
        postings: dict[str, list[tuple[int, int]]] = {}
        for e in entries:
            for lang, questions in (("zh", e.questions.zh), ("en", e.questions.en)):
                if not questions:
                    continue
                doc = len(self._owner)
                counts = Counter(t for q in questions for t in set(terms(normalize(q))))
                for term, tf in counts.items():
                    postings.setdefault(term, []).append((doc, tf))
                self._owner.append(e.id)
                self._lang.append(lang)
                self._length.append(sum(counts.values()))
        n = len(self._owner)
        self._avg = sum(self._length) / n if n else 1.0
        self._unseen_idf = math.log(1 + (n + 0.5) / 0.5)
        self._postings = {t: (math.log(1 + (n - len(p) + 0.5) / (len(p) + 0.5)), p) for t, p in postings.items()}

    @classmethod
    def from_entries(cls, entries: Iterable[FaqEntry | dict], threshold: float = CONFIDENCE) -> "FaqIndex":
        """An index of config entries (models or their dicts); ids must be unique."""
        models = [e if isinstance(e, FaqEntry) else FaqEntry.model_validate(e) for e in entries]
        seen: set[str] = set()
        for e in models:
            if e.id in seen:
                raise ValueError(f"faq: entry id {e.id!r} is used twice")
            seen.add(e.id)
        return cls(models, threshold)

    def _term_weight(self, tf: int, length: int) -> float:
        return tf * (_K1 + 1) / (tf + _K1 * (1 - _B + _B * length / self._avg))

    def best(self, text: str) -> tuple[str, float, str]:
        """(entry id, score 0..1, language of its best question) by retrieval alone."""
        query = Counter(terms(normalize(text)))
        if not query or not self._owner:
            return "", 0.0, ""
        length = sum(query.values())
        scores: dict[int, float] = {}
        ideal = 0.0
        for term, qtf in query.items():
            # A word no question has is evidence of another topic; a character pair no
            # question has mostly straddles two words ("信付" in "微信付款"): no evidence.
            idf, postings = self._postings.get(term, (0.0 if term[0] == "~" else self._unseen_idf, ()))
            ideal += idf * self._term_weight(qtf, length)
            for doc, tf in postings:
                scores[doc] = scores.get(doc, 0.0) + idf * self._term_weight(tf, self._length[doc])
        by_entry: dict[str, tuple[float, int]] = {}
        for doc, s in scores.items():
            owner = self._owner[doc]
            if s > by_entry.get(owner, (0.0, -1))[0]:
                by_entry[owner] = (s, doc)
        if not by_entry:
            return "", 0.0, ""
        ranked = sorted(by_entry.items(), key=lambda kv: kv[1][0], reverse=True)
        entry, (top, doc) = ranked[0]
        runner_up = ranked[1][1][0] if len(ranked) > 1 else 0.0
        coverage = min(1.0, top / ideal)
        margin = 1.0 - runner_up / top
        return entry, min(coverage, margin), self._lang[doc]

    def match(self, text: str) -> FaqMatch:
        """The entry this message asks, and whether the bot should answer it."""
        if len(text) > QUESTION_MAX_CHARS:
            return FaqMatch("", 0.0, False, "", detect_language(text) or "zh", "too_long")
        entry_id, score, matched_lang = self.best(text)
        language = detect_language(text) or matched_lang or "zh"
        reason = refusal(text)
        if not reason:
            reason = "no_match" if not entry_id else "low_score" if score < self.threshold else ""
        answer = ""
        if not reason:
            a = self.entries[entry_id].answer
            answer = (a.zh if language == "zh" else a.en) or a.zh or a.en or ""
        return FaqMatch(entry_id, round(score, 4), not reason, answer, language, reason)
