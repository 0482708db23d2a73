"""How many true paraphrase pairs reach the verifier, for each ``--min-cosine`` and ``--top-k``.

    python -m pipelines.candidate_recall                       # the grid below, on the validation sets (~2 min)

Every distinct sentence of the validation sets (PAWS-Wiki dev slice, MRPC train slice, the realistic set)
becomes a one-sentence document of one collection, embedded with the scanner's default embedder; the
scanner's own candidate search (``scanner.candidates``: identical sentences by hash, then the top-k cosine
neighbours above the floor) runs over it as a cross-document scan would. A paraphrase pair "reaches the
verifier" when it is among the candidates. Reported per set and setting: that recall, and the cost, the
candidate pairs per sentence (what the verifier must score). The settings chosen as defaults must reach at
least 97% of the paraphrase pairs of every set. Recall is measured on validation data only. The low band
(``--band-cosine``/``--band-top-k``) is measured beside the plain floor, and ``--corpus`` adds the cost in a
real collection, the 10,000-sentence benchmark corpus.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.data import DEFAULT_DATA_DIR, Pair, realistic, split_mrpc_train, split_wiki_dev

MIN_COSINES = (0.5, 0.55, 0.6, 0.65, 0.7)
TOP_KS = (3, 5, 8, 10)
#: (band_cosine, band_top_k, band_mutual) of the low band; a band at or below the floor is no band
BANDS = ((-1.0, 1, False), (0.7, 1, False), (0.7, 1, True), (0.7, 2, False), (0.7, 2, True))


def settings(min_cosines: tuple[float, ...], top_ks: tuple[int, ...],
             bands: tuple[tuple[float, int, bool], ...]) -> list[tuple[float, int, float, int, bool]]:
    """Every distinct (min_cosine, top_k, band_cosine, band_top_k, band_mutual); bands that change nothing are
    left out."""
    out = []
    for min_cosine in min_cosines:
        for top_k in top_ks:
            out.append((min_cosine, top_k, min_cosine, 1, False))
            out += [(min_cosine, top_k, bc, bk, mutual) for bc, bk, mutual in bands if bc > min_cosine and bk < top_k]
    return out


def band_name(min_cosine: float, band_cosine: float, band_top_k: int, band_mutual: bool) -> str:
    """How a table row names its band: ``none``, or e.g. ``below 0.7: top 1 of both`` (mutual) / ``of either``."""
    if band_cosine <= min_cosine:
        return "none"
    return f"below {band_cosine}: top {band_top_k} of {'both' if band_mutual else 'either'}"


def candidate_recall(sets: dict[str, list[Pair]], embeddings: np.ndarray, texts: list[str],
                     min_cosines: tuple[float, ...] = MIN_COSINES, top_ks: tuple[int, ...] = TOP_KS,
                     bands: tuple[tuple[float, int, bool], ...] = BANDS,
                     groups: np.ndarray | None = None) -> list[dict[str, Any]]:
    """One row per setting (``settings``): recall of each set's paraphrase pairs among the candidates, and
    candidate pairs per sentence. ``texts[i]`` is embedded as ``embeddings[i]`` (unit vectors); ``groups``: the
    document of each text (default: one document per text)."""
    from scanner.candidates import CandidateConfig, exact_pairs, neighbour_pairs, text_key

    index = {t: i for i, t in enumerate(texts)}
    keys = np.array([text_key(t) for t in texts], dtype=np.int64)
    groups = np.arange(len(texts)) if groups is None else np.asarray(groups)
    rows = []
    for min_cosine, top_k, band_cosine, band_top_k, band_mutual in settings(min_cosines, top_ks, bands):
        config = CandidateConfig(top_k=top_k, min_cosine=min_cosine, scope="cross", min_words=0, prefilter="off",
                                 search="exact", band_cosine=band_cosine, band_top_k=band_top_k, band_mutual=band_mutual)
        ni, nj, _ = neighbour_pairs(embeddings, groups, config, keys)
        ei, ej = exact_pairs(keys, groups, "cross")
        found = {(int(min(i, j)), int(max(i, j))) for i, j in zip(np.concatenate([ni, ei]),
                                                                 np.concatenate([nj, ej]), strict=True)}
        row: dict[str, Any] = {"min_cosine": min_cosine, "top_k": top_k,
                               "band": band_name(min_cosine, band_cosine, band_top_k, band_mutual),
                               "pairs_per_sentence": len(found) / len(texts)}
        for name, pairs in sets.items():
            positives = [p for p in pairs if p.label == 1]
            hit = sum((min(index[p.a], index[p.b]), max(index[p.a], index[p.b])) in found or p.a == p.b
                      for p in positives)
            row[name] = hit / len(positives) if positives else None
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "candidate-recall.json")
    parser.add_argument("--corpus", type=int, default=10_000, help="Also measure the cost on a benchmark corpus of "
                        "this many sentences (0: skip).")
    args = parser.parse_args()
    from scanner.embed import EmbedConfig, SentenceEmbedder

    sets = {"PAWS-Wiki dev slice": split_wiki_dev(args.data_dir)[1], "MRPC train slice": split_mrpc_train(args.data_dir)[1],
            "realistic validation": realistic("validation")}
    texts = sorted({s for pairs in sets.values() for p in pairs for s in (p.a, p.b)})
    embeddings = SentenceEmbedder(EmbedConfig()).embed(texts)
    rows = candidate_recall(sets, embeddings, texts)
    result: dict[str, Any] = {"sentences": len(texts), "rows": rows}
    names = list(sets)
    print(f"{len(texts)} distinct sentences; recall of paraphrase pairs among the candidates:")
    print("| min cosine | top-k | low band | " + " | ".join(names) + " | pairs per sentence |")
    print("|---|---|---|" + "---|" * len(names) + "---|")
    for r in rows:
        print(f"| {r['min_cosine']} | {r['top_k']} | {r['band']} | " + " | ".join(f"{r[n]:.3f}" for n in names)
              + f" | {r['pairs_per_sentence']:.2f} |")
    if args.corpus:
        result["corpus"] = corpus_cost(args.corpus, args.data_dir, embed=SentenceEmbedder(EmbedConfig()).embed)
        print(f"\nCost on a benchmark corpus of {args.corpus:,} sentences (40-sentence documents of real sentences):")
        print("| min cosine | top-k | low band | pairs per sentence |\n|---|---|---|---|")
        for r in result["corpus"]["rows"]:
            print(f"| {r['min_cosine']} | {r['top_k']} | {r['band']} | {r['pairs_per_sentence']:.3f} |")
    args.out.write_text(json.dumps(result, indent=2))


def corpus_cost(size: int, data_dir: Path, embed: Any) -> dict[str, Any]:
    """The cost of the same settings on a benchmark corpus (``pipelines.corpus``): candidate pairs per sentence
    in a real collection (the validation sets above are pairs only, so their cost says little). Only the cost:
    the corpus holds sentences of every split, test splits included, so no recall is measured on it."""
    from pipelines.corpus import CorpusConfig, build_corpus

    corpus = build_corpus(CorpusConfig(sentences=size), data_dir)
    texts = [s for sentences in corpus.docs.values() for s in sentences]
    groups = np.repeat(np.arange(len(corpus.docs)), [len(s) for s in corpus.docs.values()])
    rows = candidate_recall({}, embed(texts), texts, min_cosines=(0.55, 0.7), top_ks=(5,), groups=groups)
    return {"sentences": len(texts), "rows": rows}


if __name__ == "__main__":
    main()
