"""Caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr) through pycocoevalcap 1.2.

Faithful to how GLaMM / VideoGLaMM score captions, minus SPICE (it downloads Stanford CoreNLP on first
use and fails offline; `COCOEvalCap.evaluate()` is therefore never called):

* references and predictions are lower-cased and tokenised by pycocoevalcap's `PTBTokenizer`
  (Stanford CoreNLP 3.4.1, needs `java` on PATH), in two separate calls, punctuation tokens dropped;
* each scorer is called directly on the tokenised dicts.

Corpus numbers: BLEU-n from pooled n-gram statistics; METEOR from pooled statistics (not the mean of
the per-caption scores); ROUGE-L and CIDEr-D are means of per-caption values, but CIDEr-D's IDF comes
from the references of the whole set, so a subset's CIDEr differs from its share of the full set.
Note: `PTBTokenizer` writes a temporary file next to its jar, so that folder must be writable.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from videoglamm.errors import InputError

__all__ = ["CaptionScores", "tokenize_captions", "caption_scores", "METRICS"]

METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


@dataclass(frozen=True)
class CaptionScores:
    """Attributes:
    corpus: metric name -> corpus score.
    per_caption: caption id -> metric name -> score.
    """

    corpus: dict[str, float]
    per_caption: dict[str, dict[str, float]]


def _require_java() -> None:
    if shutil.which("java") is None:
        raise InputError(
            "caption metrics need Java for the PTB tokenizer and METEOR; install a JRE "
            "(e.g. apt-get install default-jre-headless) so that `java` is on PATH"
        )


def tokenize_captions(captions: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """PTB-tokenises captions exactly as pycocoevalcap does.

    Args:
        captions: id -> list of captions.

    Returns:
        id -> list of tokenised, lower-cased captions without punctuation tokens.

    Raises:
        InputError: if Java is missing.
    """
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    _require_java()
    return PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})


def _check(refs: Mapping[str, Sequence[str]], preds: Mapping[str, str]) -> list[str]:
    missing = [k for k in refs if k not in preds]
    extra = [k for k in preds if k not in refs]
    if missing or extra:
        raise InputError(
            f"caption ids differ: {len(missing)} without prediction (e.g. {missing[:3]}), "
            f"{len(extra)} without references (e.g. {extra[:3]})"
        )
    empty = [k for k, v in refs.items() if isinstance(v, str) or len(v) == 0]
    if empty:
        raise InputError(f"references must be non-empty lists of strings; bad ids: {empty[:3]}")
    if not refs:
        raise InputError("no captions to score")
    return list(refs)


def caption_scores(refs: Mapping[str, Sequence[str]], preds: Mapping[str, str]) -> CaptionScores:
    """Scores predicted captions against references.

    Args:
        refs: id -> list of reference captions.
        preds: id -> predicted caption (same ids).

    Returns:
        Corpus and per-caption Bleu_1..4, METEOR, ROUGE_L, CIDEr.

    Raises:
        InputError: mismatched ids, empty reference lists, or no Java.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge

    ids = _check(refs, preds)
    gts = tokenize_captions({k: list(refs[k]) for k in ids})
    res = tokenize_captions({k: [preds[k]] for k in ids})
    per: dict[str, dict[str, float]] = {k: {} for k in ids}
    corpus: dict[str, float] = {}

    bleu, bleu_each = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        corpus[f"Bleu_{n + 1}"] = float(bleu[n])
        for k, v in zip(ids, bleu_each[n]):
            per[k][f"Bleu_{n + 1}"] = float(v)
    meteor_scorer = Meteor()
    try:
        meteor, meteor_each = meteor_scorer.compute_score(gts, res)
    finally:
        # Stop the METEOR JVM now rather than whenever the scorer is garbage collected.
        _close_meteor(meteor_scorer)
        del meteor_scorer
    corpus["METEOR"] = float(meteor)
    for name, scorer in (("ROUGE_L", Rouge()), ("CIDEr", Cider())):
        score, each = scorer.compute_score(gts, res)
        corpus[name] = float(score)
        for k, v in zip(ids, each):
            per[k][name] = float(v)
    for k, v in zip(ids, meteor_each):
        per[k]["METEOR"] = float(v)
    return CaptionScores(corpus=corpus, per_caption=per)


def _close_meteor(scorer: Any) -> None:
    """End the scorer's Java process and close all three of its pipes (its own `__del__` leaves stdout and
    stderr open: a ResourceWarning each). Its `__del__` later finds the process already gone."""
    proc = scorer.meteor_p
    with scorer.lock:
        proc.stdin.close()
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
