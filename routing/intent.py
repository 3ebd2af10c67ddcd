"""Which desk a buyer's message is for: a small classifier trained at start-up.

Keyword lists send about one message in five to the wrong desk ("兑换码用不了"
has no after-sales keyword).  This is multinomial naive Bayes over character
1-4-grams of the normalised message plus its words (routing/text.py) — a
linear model in log space, trained in one pass over a few hundred examples
(~0.2 s of CPU with the Chinese dictionary loaded), so the router can train it
whenever the config loads.
It learns from the labelled buyer messages shipped in
routing/data/intent_examples.tsv and from the admin's `router.keywords`, each
keyword `KEYWORD_WEIGHT` more examples of its role (so a role of the admin's
own, with keywords only, is learnt too).

`predict` gives the role and its probability: the naive Bayes posterior
tempered by `TEMPERATURE` (set so that, under cross-validation, the mean
confidence is close to the accuracy; the raw posterior is nearly always ~1).
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Iterable, Mapping

from routing.data import labelled
from routing.text import char_ngrams, normalize, terms

_ALPHA = 0.3  # additive smoothing (best of 0.1 / 0.3 / 0.5 / 1.0 by cross-validation)
KEYWORD_WEIGHT = 3  # each keyword counts as this many examples (cross-validated: 0.85 → 0.86)
TEMPERATURE = 7.5  # log-probabilities are divided by this before the softmax


def features(text: str) -> list[str]:
    """Character 1-4-grams and words (with a prefix, so "卡" the word is not "卡" the character)."""
    normalized = normalize(text)
    return char_ngrams(normalized, (1, 2, 3, 4)) + ["w:" + t for t in terms(normalized)]


def shipped_examples() -> list[tuple[str, str]]:
    """(message, role) pairs of routing/data/intent_examples.tsv."""
    return [(text, role) for role, text in labelled("intent_examples.tsv")]


class IntentClassifier:
    def __init__(self, roles: list[str], log_prior: list[float], log_likelihood: dict[str, list[float]]):
        self.roles = roles
        self._prior = log_prior
        self._ll = log_likelihood  # feature → its log-probability in each role's messages

    @classmethod
    def train(cls, examples: Iterable[tuple[str, str]],
              keywords: Mapping[str, Iterable[str]] | None = None) -> "IntentClassifier":
        """Learn from (message, role) pairs and, per role, keywords (one example each)."""
        counts: dict[str, Counter] = defaultdict(Counter)
        documents: Counter = Counter()
        weighted = [(text, role, 1) for text, role in examples]
        weighted += [(w, role, KEYWORD_WEIGHT) for role, words in (keywords or {}).items() for w in words]
        for text, role, weight in weighted:
            for f in features(text):
                counts[role][f] += weight
            documents[role] += weight
        if not counts:
            raise ValueError("no examples to learn from")
        roles = sorted(counts)
        vocabulary = set().union(*counts.values())
        total = sum(documents.values())
        log_prior = [math.log(documents[r] / total) for r in roles]
        denominators = [sum(counts[r].values()) + _ALPHA * len(vocabulary) for r in roles]
        log_likelihood = {f: [math.log((counts[r][f] + _ALPHA) / d) for r, d in zip(roles, denominators)]
                          for f in vocabulary}
        return cls(roles, log_prior, log_likelihood)

    def predict(self, text: str) -> tuple[str, float]:
        """(role, probability 0..1).  A message with nothing the examples had gets the
        most common role at its prior probability."""
        known = self._ll.get
        # Features no example had say nothing about the role.
        rows = [ll for f in features(text) if (ll := known(f)) is not None]
        scores = [prior + sum(column) for prior, column in zip(self._prior, zip(*rows))] if rows else self._prior
        top = max(scores)
        weights = [math.exp((s - top) / TEMPERATURE) for s in scores]
        best = weights.index(1.0)
        return self.roles[best], weights[best] / sum(weights)
