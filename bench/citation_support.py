"""Citation support on SQuAD dev: the support score (core/answering/support.py) of claims against the passage
that holds them and against passages that do not, to choose the weight of term overlap and the threshold.

For `--questions` sampled questions whose gold paragraph holds the first gold answer, three claims:
- `verbatim`: the gold paragraph's sentence that holds the answer;
- `restated`: the question with its wh-word replaced by the answer (words the paragraph need not use);
- `swapped`: the verbatim sentence with the answer replaced by another question's answer from the same page
  (a fabricated fact in the paragraph's own words).
Each is scored against the gold paragraph (`pos`), another paragraph of the same page without the answer
(`hard`) and a paragraph of another page (`easy`). Prints, per (weight, threshold), the share of pairs judged
supported, the best cells first by the mean of verbatim and restated recall and 1 - their hard-negative rate.

Usage: .venv/bin/python bench/citation_support.py [--questions 200] [--seed 6]
       .venv/bin/python bench/citation_support.py --smoke    # 20 questions: seconds
"""

from __future__ import annotations

import argparse
import html
import json
import random
import re
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(REPO_ROOT)

from core.answering.support import (  # noqa: E402
    LEXICAL_WEIGHT,
    SUPPORT_THRESHOLD,
    lexical_support,
    numbers_of,
    passage_sentences,
)
from core.retrieval.embedders import make_embedder  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.text import terms  # noqa: E402

SQUAD = REPO_ROOT.parent / "shared" / "eval" / "squad-dev"
_PARAGRAPH = re.compile(r'<p id="(p\d+)">(.*?)</p>', re.S)
_WH = re.compile(r"^(what|which|who|whom|whose|when|where|why|how( many| much| long| far| old)?)\b", re.I)
WEIGHTS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0)
THRESHOLDS = tuple(x / 100 for x in range(30, 91, 5))
Pair = tuple[float, float]
"""(term overlap, best sentence cosine) of one claim against one passage."""


def paragraphs() -> dict[str, str]:
    """Every paragraph of the SQuAD dev pages, by `<page>#pN`."""
    found: dict[str, str] = {}
    for page in sorted((SQUAD / "corpus_html").glob("*.html")):
        for pid, body in _PARAGRAPH.findall(page.read_text(encoding="utf-8")):
            found[f"{page.stem}#{pid}"] = html.unescape(re.sub(r"<[^>]+>", "", body))
    return found


def measure(count: int, seed: int) -> dict[str, dict[str, list[Pair]]]:
    """The (overlap, cosine) pairs of every claim kind against each passage kind."""
    texts = paragraphs()
    rows = [json.loads(line) for line in (SQUAD / "qa-dev.jsonl").read_text().splitlines() if line.strip()]
    rng = random.Random(seed)
    rng.shuffle(rows)
    embedder = make_embedder(Settings())
    cache: dict[str, np.ndarray] = {}

    def vectors(batch: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(batch) if t not in cache]
        if missing:
            cache.update(zip(missing, embedder.embed(missing), strict=True))
        return np.stack([cache[t] for t in batch])

    def pair(claim: str, passage: str) -> Pair:
        lexical = lexical_support(claim, set(terms(passage)), numbers_of(passage))
        rows_ = vectors([claim, *passage_sentences(passage)])
        return lexical, float(np.max(rows_[1:] @ rows_[0]))

    by_page: dict[str, list[str]] = {}
    for pid in texts:
        by_page.setdefault(pid.split("#")[0], []).append(pid)
    found: dict[str, dict[str, list[Pair]]] = {
        kind: {"pos": [], "hard": [], "easy": []} for kind in ("verbatim", "restated", "swapped")
    }
    done = 0
    for row in rows:
        gold, pid, page = row["answers"][0], row["para_id"], row["doc_id"]
        paragraph = texts.get(pid, "")
        sentence = next((s for s in passage_sentences(paragraph) if gold in s), None)
        same = [p for p in by_page.get(page, []) if p != pid and gold not in texts[p]]
        wrong = [r["answers"][0] for r in rows if r["doc_id"] == page and r["answers"][0] not in paragraph]
        if sentence is None or not same or not wrong:
            continue
        question = row["question"].strip().rstrip("?")
        claims = {
            "verbatim": sentence,
            "restated": _WH.sub(gold, question) if _WH.search(question) else f"{question} {gold}",
            "swapped": sentence.replace(gold, rng.choice(wrong)),
        }
        hard = texts[rng.choice(same)]
        easy = texts[rng.choice([p for p in texts if not p.startswith(f"{page}#")])]
        for kind, claim in claims.items():
            for against, passage in (("pos", paragraph), ("hard", hard), ("easy", easy)):
                found[kind][against].append(pair(claim, passage))
        done += 1
        if done >= count:
            break
    return found


def share(pairs: list[Pair], weight: float, threshold: float) -> float:
    """Share of pairs whose support score reaches the threshold."""
    return sum(weight * lexical + (1 - weight) * dense >= threshold for lexical, dense in pairs) / len(pairs)


def main() -> int:
    """Measure, then print the best cells and the configured one."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    found = measure(20 if args.smoke else args.questions, args.seed)
    print(f"questions: {len(found['verbatim']['pos'])}")

    def cell(weight: float, threshold: float) -> dict[str, float]:
        return {
            f"{kind} {against}": round(share(pairs, weight, threshold), 3)
            for kind, by_passage in found.items()
            for against, pairs in by_passage.items()
        }

    def balance(rates: dict[str, float]) -> float:
        kept = rates["verbatim pos"] + rates["restated pos"]
        return (kept + 2 - rates["verbatim hard"] - rates["restated hard"]) / 4

    cells = sorted(
        ((balance(cell(w, t)), w, t) for w in WEIGHTS for t in THRESHOLDS), key=lambda c: (-c[0], c[1], c[2])
    )
    for value, weight, threshold in cells[:6]:
        print(
            json.dumps(
                {
                    "weight": weight,
                    "threshold": threshold,
                    "balance": round(value, 3),
                    **cell(weight, threshold),
                }
            )
        )
    configured = cell(LEXICAL_WEIGHT, SUPPORT_THRESHOLD)
    print(
        json.dumps(
            {
                "configured": [LEXICAL_WEIGHT, SUPPORT_THRESHOLD],
                "balance": round(balance(configured), 3),
                **configured,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
