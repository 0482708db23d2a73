"""Models load from safetensors only, never from pickle, never with remote code; bad names fail before any work."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import write

from scanner.cli import cli
from scanner.embed import HASHING, load_sentence_transformer, packaged_minilm_path
from scanner.errors import ModelLoadError
from scanner.modelfiles import check_safe_weights, locate_model, model_fingerprint
from scanner.verify import DEFAULT_CROSS_ENCODER, load_cross_encoder

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


class _Payload:
    """Unpickling this creates a file: proof that a pickle was (or was not) opened."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def tiny_bert(folder: Path, safetensors: bool = True) -> Path:
    """A one-layer BERT with the packaged MiniLM's tokenizer: a real, fast model folder."""
    from transformers import BertConfig, BertModel

    cfg = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
    BertModel(cfg).save_pretrained(folder, safe_serialization=safetensors)
    for name in TOKENIZER_FILES:
        shutil.copy(Path(packaged_minilm_path()) / name, folder / name)
    return folder


def pickle_only_model(folder: Path, marker: Path) -> Path:
    tiny_bert(folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    return folder


def test_the_payload_is_live(tmp_path):
    """The test model's pickle really runs code when unpickled, so the refusals below mean something."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("loader", ["embedder", "cross-encoder"])
def test_pickle_weights_are_refused_unopened(tmp_path, loader):
    marker = tmp_path / "unpickled"
    folder = pickle_only_model(tmp_path / "model", marker)
    with pytest.raises(ModelLoadError, match=r"pytorch_model\.bin is a pickle file.*safetensors only"):
        if loader == "embedder":
            load_sentence_transformer(str(folder), torch.device("cpu"))
        else:
            load_cross_encoder(str(folder), torch.device("cpu"))
    assert not marker.exists()


def test_a_pickled_module_of_a_sentence_transformer_is_refused(tmp_path):
    folder = tiny_bert(tmp_path / "st")
    write(folder / "modules.json", json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]))
    write(folder / "1_Pooling" / "config.json", json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}))
    write(folder / "2_Dense" / "config.json", json.dumps({"in_features": 32, "out_features": 8, "bias": True}))
    marker = tmp_path / "unpickled"
    (folder / "2_Dense" / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ModelLoadError, match=r"2_Dense/pytorch_model\.bin is a pickle file"):
        load_sentence_transformer(str(folder), torch.device("cpu"))
    assert not marker.exists()


def test_shipped_models_pass_the_check():
    check_safe_weights(Path(packaged_minilm_path()), "embedder", "--embedder")
    check_safe_weights(Path(DEFAULT_CROSS_ENCODER), "cross-encoder", "--cross-encoder")


@pytest.mark.parametrize("loader", ["embedder", "cross-encoder"])
def test_remote_code_is_never_run(tmp_path, loader):
    folder = tiny_bert(tmp_path / "model")
    marker = tmp_path / "imported"
    write(folder / "evil.py", f"open({str(marker)!r}, 'w').close()\nfrom transformers import BertModel as Evil\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.Evil", "AutoModel": "evil.Evil",
                          "AutoModelForSequenceClassification": "evil.Evil"}
    (folder / "config.json").write_text(json.dumps(config))
    try:
        if loader == "embedder":
            load_sentence_transformer(str(folder), torch.device("cpu"))
        else:
            load_cross_encoder(str(folder), torch.device("cpu"))
    except ModelLoadError:
        pass  # refusing is fine too; running the code is not
    assert not marker.exists()


def test_hub_id_not_in_the_local_cache_says_how_to_point_at_a_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    with pytest.raises(ModelLoadError, match="pass --embedder with the path of a local model folder"):
        locate_model("someone/not-downloaded", "embedder", "--embedder")


@pytest.mark.parametrize("option,value", [
    ("--cross-encoder", "{pickled}"),
    ("--embedder", "someone/not-downloaded"),
    ("--cross-encoder", "{tmp}/no-such-folder"),
])
def test_cli_refuses_bad_models_before_reading_anything(tmp_path, option, value):
    docs = write(tmp_path / "docs" / "a.txt", "A sentence that would be scanned if the models were fine.")
    pickled = pickle_only_model(tmp_path / "pickled", tmp_path / "unpickled")
    args = [str(docs.parent), "--out", str(tmp_path / "r.parquet"), "--engine", "local",
            option, value.format(pickled=pickled, tmp=tmp_path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 5, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and option in last
    assert "read ..." not in result.output  # failed before any work
    assert not (tmp_path / "unpickled").exists() and not (tmp_path / "r.parquet").exists()


def test_model_fingerprint_hashes_the_safetensors_and_names_the_hashing_embedder(tmp_path):
    assert model_fingerprint(HASHING) == "hashing-v1"  # the built-in embedder has no files
    write(tmp_path / "empty" / "config.json", "{}")
    assert model_fingerprint(str(tmp_path / "empty")) == "unknown"
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.safetensors").write_bytes(b"weights")
    assert model_fingerprint(str(tmp_path / "model")) == hashlib.sha256(b"weights").hexdigest()[:16]
