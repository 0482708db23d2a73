"""How many true paraphrase pairs reach the verifier, for each ``--min-cosine`` and ``--top-k``.

    python -m pipelines.candidate_recall                       # the grid below, on the validation sets

Every distinct sentence of the validation sets (PAWS-Wiki dev slice, MRPC train slice, the realistic set)
becomes a one-sentence document of one collection, embedded with the scanner's default embedder; the
scanner's own candidate search (``scanner.candidates``: identical sentences by hash, then the top-k cosine
neighbours above the floor) runs over it as a cross-document scan would. A paraphrase pair "reaches the
verifier" when it is among the candidates. Reported per set and setting: that recall, and the cost, the
candidate pairs per sentence (what the verifier must score). The settings chosen as defaults must reach at
least 97% of the paraphrase pairs of every set. Validation data only: nothing here reads a test split.
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


def candidate_recall(sets: dict[str, list[Pair]], embeddings: np.ndarray, texts: list[str],
                     min_cosines: tuple[float, ...] = MIN_COSINES, top_ks: tuple[int, ...] = TOP_KS) -> list[dict[str, Any]]:
    """One row per (min_cosine, top_k): recall of each set's paraphrase pairs among the candidates, and
    candidate pairs per sentence. ``texts[i]`` is embedded as ``embeddings[i]`` (unit vectors)."""
    from scanner.candidates import CandidateConfig, exact_pairs, neighbour_pairs, text_key

    index = {t: i for i, t in enumerate(texts)}
    keys = np.array([text_key(t) for t in texts], dtype=np.int64)
    groups = np.arange(len(texts))
    rows = []
    for min_cosine in min_cosines:
        for top_k in top_ks:
            config = CandidateConfig(top_k=top_k, min_cosine=min_cosine, scope="cross", min_words=0,
                                     prefilter="off", search="exact")
            ni, nj, _ = neighbour_pairs(embeddings, groups, config, keys)
            ei, ej = exact_pairs(keys, groups, "cross")
            found = {(int(min(i, j)), int(max(i, j))) for i, j in zip(np.concatenate([ni, ei]),
                                                                     np.concatenate([nj, ej]), strict=True)}
            row: dict[str, Any] = {"min_cosine": min_cosine, "top_k": top_k,
                                   "pairs_per_sentence": len(found) / len(texts)}
            for name, pairs in sets.items():
                positives = [p for p in pairs if p.label == 1]
                hit = sum((min(index[p.a], index[p.b]), max(index[p.a], index[p.b])) in found or p.a == p.b
                          for p in positives)
                row[name] = hit / len(positives)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "candidate-recall.json")
    args = parser.parse_args()
    from scanner.embed import EmbedConfig, SentenceEmbedder

    sets = {"PAWS-Wiki dev slice": split_wiki_dev(args.data_dir)[1], "MRPC train slice": split_mrpc_train(args.data_dir)[1],
            "realistic validation": realistic("validation")}
    texts = sorted({s for pairs in sets.values() for p in pairs for s in (p.a, p.b)})
    embeddings = SentenceEmbedder(EmbedConfig()).embed(texts)
    rows = candidate_recall(sets, embeddings, texts)
    args.out.write_text(json.dumps({"sentences": len(texts), "rows": rows}, indent=2))
    names = list(sets)
    print(f"{len(texts)} distinct sentences; recall of paraphrase pairs among the candidates:")
    print("| min cosine | top-k | " + " | ".join(names) + " | pairs per sentence |")
    print("|---|---|" + "---|" * len(names) + "---|")
    for r in rows:
        print(f"| {r['min_cosine']} | {r['top_k']} | " + " | ".join(f"{r[n]:.3f}" for n in names)
              + f" | {r['pairs_per_sentence']:.2f} |")


if __name__ == "__main__":
    main()
