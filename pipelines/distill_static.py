"""Distill a model2vec static embedder from the packaged all-MiniLM-L6-v2, offline, for comparison.

The scanner distills its own static table for the pre-filter (``scanner.prefilter``, no extra dependency); this
builds model2vec's version of the same idea (one forward pass per vocabulary token, PCA, SIF weighting) so
``pipelines.static_eval --model2vec`` can measure both on the same corpus. Store it outside git:

    python -m pipelines.distill_static --out /root/scanner-runs/m2v

Needs ``pip install model2vec==0.10.0 skeletoken==0.6.1`` (the ``static`` extra).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Folder to write the model to.")
@click.option("--pca-dims", default=256, show_default=True, help="Output dimensions (PCA).")
@click.option("--threads", default=2, show_default=True, help="torch threads.")
def main(out: str, pca_dims: int, threads: int) -> None:
    """Distill a static embedder from the packaged MiniLM.

    Example: python -m pipelines.distill_static --out /root/scanner-runs/m2v
    """
    import torch
    from model2vec.distill import distill_from_model
    from transformers import AutoModel, AutoTokenizer

    from scanner.embed import packaged_minilm_path

    torch.set_num_threads(threads)
    path = packaged_minilm_path()
    started = time.perf_counter()
    model = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    static = distill_from_model(model=model, tokenizer=tokenizer, pca_dims=pca_dims, device="cpu")
    static.save_pretrained(out)
    seconds = time.perf_counter() - started
    size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
    info = {"source": path, "pca_dims": pca_dims, "seconds": round(seconds, 1), "bytes": size}
    (Path(out) / "distill.json").write_text(json.dumps(info, indent=2))
    click.echo(json.dumps(info))


if __name__ == "__main__":
    main()
