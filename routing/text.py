"""Buyers' messages made comparable: normalised, split into Chinese words and English stems.

Shared by the FAQ retrieval (routing/faq.py), the intent classifier
(routing/intent.py) and the anger score (routing/sentiment.py), so that the
three read a message the same way: full-width forms folded (NFKC), lower case,
Chinese runs segmented by jieba-rs (rjieba: ~10 µs a message, against ~150 µs
for the pure-Python jieba), English words stemmed (Snowball).

rjieba builds its dictionary when it is imported (~0.2 s), so it is imported
on first use, like the stemmer; `preload()` does both ahead, e.g. while the
daemon starts (building a FaqIndex or training the IntentClassifier does too).
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from types import ModuleType

MAX_CHARS = 500  # what the engines read of a message: what it is about is in its start
_RUNS = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+|[a-z]+(?:'[a-z]+)?|\d+")
_CJK_START = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

# Words that say nothing about what a message is about: left out of retrieval
# terms (a question's topic is in its other words).  Question words stay: they
# tell "where is the key" from "how do I use the key".
ZH_STOPWORDS = frozenset(
    "的 了 吗 呢 啊 吧 呀 嘛 哦 哈 啦 么 喔 哇 嗯 我 你 您 我们 你们 他 她 它 这 那 这个 那个 "
    "请问 请 一下 麻烦 就 都 也 和 与 及 是 在 给 把 被 让 对 下 里 上 中 个 要 想 能 会 可以".split())
EN_STOPWORDS = frozenset(
    "a an the is are am was were be been being to of in on for at by with from and or but i you we "
    "me my your our us it its this that these those do does did can could would will should shall "
    "may might please hi hello hey there just so any some have has had get got".split())


@lru_cache(maxsize=1)
def _segmenter() -> ModuleType:
    import rjieba  # builds its dictionary on import: only when first needed
    return rjieba


def preload() -> None:
    """Load the Chinese dictionary and the stemmer now rather than on the first message."""
    _segmenter()
    _stemmer()


def normalize(text: str) -> str:
    """The first MAX_CHARS characters, full-width letters, digits and punctuation folded to
    ASCII (NFKC), lower case, one space between words."""
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS]).lower().replace("\u2019", "'")
    return " ".join(text.split())


@lru_cache(maxsize=1)
def _stemmer():
    # snowballstemmer imports all its ~30 languages (~30 ms): only when first needed.
    from snowballstemmer.english_stemmer import EnglishStemmer
    return EnglishStemmer()


@lru_cache(maxsize=16384)
def stem(word: str) -> str:
    return _stemmer().stemWord(word)


def runs(normalized: str) -> list[str]:
    """Runs of Chinese characters, English words and numbers; punctuation and spaces dropped."""
    return _RUNS.findall(normalized)


def is_chinese(run: str) -> bool:
    return bool(_CJK_START.match(run))


def language(text: str) -> str:
    """'zh' or 'en', whichever script carries more of the message (a Chinese character
    weighs as much as an English word of three letters); '' when it has neither."""
    zh = en = 0
    for run in runs(normalize(text)):
        if is_chinese(run):
            zh += len(run)
        elif not run.isdigit():
            en += len(run) / 3
    return "" if not (zh or en) else "zh" if zh >= en else "en"


def words(normalized: str) -> list[str]:
    """Chinese words (jieba) and English words, in order, as written."""
    out: list[str] = []
    cut = None
    for run in runs(normalized):
        if is_chinese(run):
            cut = cut or _segmenter().cut
            out.extend(cut(run))
        else:
            out.append(run)
    return out


def terms(normalized: str) -> list[str]:
    """Retrieval terms: Chinese words and English stems without stop words, plus the
    character pairs of every Chinese run that are not already a word (they match where
    segmentation differs: "卡密在哪看" / "卡密在哪里查看")."""
    out: list[str] = []
    for run in runs(normalized):
        if is_chinese(run):
            cut = _segmenter().cut(run)
            out.extend(w for w in cut if w not in ZH_STOPWORDS)
            out.extend("~" + pair for i in range(len(run) - 1) if (pair := run[i:i + 2]) not in cut)
        elif run not in EN_STOPWORDS:
            out.append(stem(run))
    return out


def char_ngrams(normalized: str, sizes: tuple[int, ...] = (1, 2, 3)) -> list[str]:
    """Character n-grams of each run, bounded by spaces so that word edges count."""
    out: list[str] = []
    for run in runs(normalized):
        padded = f" {run} "
        for n in sizes:
            out.extend(padded[i:i + n] for i in range(len(padded) - n + 1))
    return out
