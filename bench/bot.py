#!/usr/bin/env python3
"""The bot's engines: cost per message and the FAQ's precision / coverage.

    python bench/bot.py            # about 10 s
    python bench/bot.py --repeat 20

Prints one JSON object (see bench/README.md): CPU microseconds per message of
FaqIndex.match, IntentClassifier.predict and anger_score (median over every
message of the shipped data sets, each timed `--repeat` times), start-up CPU
costs (import, Chinese dictionary, training), and the FAQ's precision and coverage on
routing/data/faq_heldout.tsv at CONFIDENCE and at the lowest threshold that
keeps precision ≥ 0.95.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))


def per_message_us(fn, messages: list[str], repeat: int) -> float:
    """Median CPU time of one call (the machine is shared: CPU time does not count the
    time another process had the core), each message called `repeat` times."""
    times = []
    clock = time.thread_time_ns
    for _ in range(repeat):
        for text in messages:
            start = clock()
            fn(text)
            times.append(clock() - start)
    return round(statistics.median(times) / 1000, 1)


def precision_coverage(results: list[tuple[str, str, float, bool]], threshold: float) -> tuple[float, float]:
    """results: (expected entry or '-', matched entry, score, refused by a rule)."""
    answered = [(e, m) for e, m, s, refused in results if not refused and m and s >= threshold]
    right = sum(e == m for e, m in answered)
    positives = sum(e != "-" for e, *_ in results)
    return (right / len(answered) if answered else 1.0), right / positives


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10, help="times each message is timed")
    parser.add_argument("--config", default=str(REPO / "config.yaml"), help="FAQ entries of this config")
    a = parser.parse_args()
    load_start = os.getloadavg()[0]

    started = time.process_time()
    from routing import text
    from routing.faq import CONFIDENCE, FaqIndex, refusal
    from routing.intent import IntentClassifier, shipped_examples
    from routing.sentiment import anger_score
    imported = time.process_time()
    text.preload()
    dictionary = time.process_time()

    from aggregator.config import DEFAULT_KEYWORDS, load
    from routing.data import labelled

    examples = shipped_examples()
    entries = load(a.config).faq
    started_training = time.process_time()
    classifier = IntentClassifier.train(examples, DEFAULT_KEYWORDS)
    trained = time.process_time()
    index = FaqIndex.from_entries(entries)
    indexed = time.process_time()

    heldout = labelled("faq_heldout.tsv")
    messages = [t for _, t in heldout] + [t for t, _ in examples] + [t for _, t in labelled("anger.tsv")]
    results = []
    for expected, message in heldout:
        entry, score, _ = index.best(message)
        results.append((expected, entry, score, bool(refusal(message))))
    precision, coverage = precision_coverage(results, CONFIDENCE)
    for threshold in sorted({round(r[2], 4) for r in results if not r[3]}):
        p, c = precision_coverage(results, threshold)
        if p >= 0.95:
            break
    else:
        threshold, p, c = None, None, None

    try:
        rev = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], check=False,
                             capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        rev = None
    print(json.dumps({
        "git": rev,
        "loadavg_start": load_start,
        "messages": len(messages),
        "repeat": a.repeat,
        "faq_us_per_msg": per_message_us(index.match, messages, a.repeat),
        "intent_us_per_msg": per_message_us(classifier.predict, messages, a.repeat),
        "anger_us_per_msg": per_message_us(anger_score, messages, a.repeat),
        "import_ms": round((imported - started) * 1000, 1),
        "dictionary_ms": round((dictionary - imported) * 1000, 1),
        "intent_train_ms": round((trained - started_training) * 1000, 1),
        "intent_examples": len(examples),
        "faq_index_ms": round((indexed - trained) * 1000, 1),
        "faq_entries": len(index.entries),
        "faq_heldout": len(heldout),
        "faq_confidence": CONFIDENCE,
        "faq_precision": round(precision, 3),
        "faq_coverage": round(coverage, 3),
        "faq_threshold_for_precision_0.95": threshold,
        "faq_precision_at_that": p and round(p, 3),
        "faq_coverage_at_that": c and round(c, 3),
        "loadavg_end": os.getloadavg()[0],
    }))


if __name__ == "__main__":
    main()
