"""Could a static (model2vec) embedder replace MiniLM for candidate generation? Measure it.

On a benchmark corpus (``pipelines.corpus``), the MiniLM path gives the reference: its candidates (default
top-k and floor), cross-encoded, give the flagged pairs. The static embedder (distilled by
``pipelines.distill_static``) is then searched at several top-k and floors (on mean-centred vectors, which
separates static cosines better), and for each we report how many of MiniLM's flagged pairs its candidates
still contain (the recall that matters: the cross-encoder decides the same pair the same way), how many
candidates it makes and how many distinct sentences those involve (what MiniLM would still have to embed if
the static search were only a pre-filter), and both embedders' speed.

    python -m pipelines.static_eval --static /root/scanner-runs/m2v --sentences 2000
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from pipelines.bench_sides import read_docs
from pipelines.corpus import CorpusConfig, build_corpus

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def evaluate(static_dir: str, sentences: int, data_dir: Path, seed: int = 0) -> dict:
    from model2vec import StaticModel

    from scanner.candidates import CandidateConfig, neighbour_pairs, text_key, word_counts
    from scanner.embed import EmbedConfig, SentenceEmbedder
    from scanner.verify import CrossEncoderScorer, VerifyConfig, model_threshold

    with tempfile.TemporaryDirectory() as tmp:
        docs = build_corpus(CorpusConfig(sentences=sentences, seed=seed), data_dir).write(tmp)
        rows = read_docs(docs)
    texts = [t for _, t in rows]
    groups = np.unique([d for d, _ in rows], return_inverse=True)[1]
    keys = np.array([text_key(t) for t in texts], dtype=np.int64)
    active = word_counts(texts) >= CandidateConfig().min_words
    embedder = SentenceEmbedder(EmbedConfig())
    t0 = time.perf_counter()
    dense = embedder.embed(texts)
    dense_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    static_model = StaticModel.from_pretrained(static_dir)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    static = np.asarray(static_model.encode(texts), dtype=np.float32)
    static_s = time.perf_counter() - t0
    static -= static[active].mean(axis=0)
    static /= np.maximum(np.linalg.norm(static, axis=1, keepdims=True), 1e-12)
    mi, mj, _ = neighbour_pairs(dense, groups, CandidateConfig(), keys=keys, active=active)
    scores = CrossEncoderScorer(VerifyConfig()).score([texts[i] for i in mi], [texts[j] for j in mj])
    flagged = {(int(i), int(j)) for i, j, s in zip(mi, mj, scores, strict=True)
               if s >= model_threshold(VerifyConfig().model)}
    grid = []
    for top_k in (5, 10):
        for floor in (0.3, 0.4, 0.5, 0.6, 0.7):
            si, sj, _ = neighbour_pairs(static, groups, CandidateConfig(top_k=top_k, min_cosine=floor), keys=keys, active=active)
            got = set(zip(si.tolist(), sj.tolist(), strict=True))
            grid.append({"top_k": top_k, "min_cosine": floor, "candidates": len(got),
                         "sentences_involved": len(set(si.tolist()) | set(sj.tolist())),
                         "flagged_recall": round(len(flagged & got) / max(1, len(flagged)), 4)})
    size = sum(f.stat().st_size for f in Path(static_dir).rglob("*") if f.is_file())
    return {"sentences": len(texts), "searched": int(active.sum()), "minilm_candidates": len(mi),
            "minilm_flagged": len(flagged), "minilm_sentences_per_s": round(len(texts) / dense_s, 1),
            "static_sentences_per_s": round(len(texts) / static_s, 1), "static_load_s": round(load_s, 2),
            "static_bytes": size, "grid": grid}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--static", "static_dir", required=True, type=click.Path(exists=True, file_okay=False), help="model2vec folder.")
@click.option("--sentences", default=2000, show_default=True, help="Corpus size.")
@click.option("--data-dir", default=str(DEFAULT_DATA), show_default=True, type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Also write the JSON here.")
def main(static_dir: str, sentences: int, data_dir: str, out: str | None) -> None:
    """Recall of MiniLM's flagged pairs among a static embedder's candidates.

    Example: python -m pipelines.static_eval --static /root/scanner-runs/m2v --sentences 2000
    """
    result = evaluate(static_dir, sentences, Path(data_dir))
    text = json.dumps(result, indent=2)
    click.echo(text)
    if out:
        Path(out).write_text(text + "\n")


if __name__ == "__main__":
    main()
