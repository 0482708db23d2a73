"""Pair check: one pair, many pairs, a file of pairs, and the ``scan check`` command."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import write

from scanner.cli import cli
from scanner.errors import InputError
from scanner.pair_check import check, check_file, check_pairs, read_pairs

SOURCE = "I took a flight from New York to Paris."
PARAPHRASE = "I flew to Paris from New York."
SWAP = "I took a flight from Paris to New York."
QUEEN = "The queen is the only female in the hive that lays eggs, and she may lay two thousand of them in a single day."
QUEEN_PARA = "The queen, who is the only female in the hive that lays eggs, can lay two thousand of them in one day."


def test_a_paraphrase_is_a_paraphrase(local_engine):
    assert check(SOURCE, PARAPHRASE, engine=local_engine).paraphrase
    assert check(SOURCE, "I flew to Paris, departing from New York.", engine=local_engine).paraphrase


def test_a_word_swap_is_not(local_engine):
    got = check(SOURCE, SWAP, engine=local_engine)
    assert (got.paraphrase, got.match) == (False, "rejected")
    assert 0.0 <= got.score < got.threshold


def test_the_order_of_the_two_sentences_does_not_matter_and_matches_a_scan(local_engine, tmp_path):
    assert check(QUEEN, QUEEN_PARA, engine=local_engine) == check(QUEEN_PARA, QUEEN, engine=local_engine)
    from scanner.scanning import ScanConfig, run_scan

    write(tmp_path / "docs" / "a.txt", QUEEN)
    write(tmp_path / "docs" / "b.txt", QUEEN_PARA)
    report = run_scan([tmp_path / "docs"], ScanConfig.from_options(threshold=0.0, cache=False), engine=local_engine)
    assert report.pairs["score"].to_pylist() == [pytest.approx(check(QUEEN, QUEEN_PARA, engine=local_engine).score)]


def test_both_orders_scores_agree_between_check_and_a_scan(local_engine, tmp_path):
    one = check(QUEEN, QUEEN_PARA, engine=local_engine)
    both = check(QUEEN, QUEEN_PARA, engine=local_engine, both_orders=True)
    assert both == check(QUEEN_PARA, QUEEN, engine=local_engine, both_orders=True)
    assert both.score != one.score
    from scanner.scanning import ScanConfig, run_scan

    write(tmp_path / "docs" / "a.txt", QUEEN)
    write(tmp_path / "docs" / "b.txt", QUEEN_PARA)
    config = ScanConfig.from_options(threshold=0.0, cache=False, both_orders=True)
    report = run_scan([tmp_path / "docs"], config, engine=local_engine)
    assert report.pairs["score"].to_pylist() == [pytest.approx(both.score)]
    assert report.metadata["cross_encoder"]["both_orders"] is True
    result = CliRunner().invoke(cli, ["check", "--both-orders", QUEEN, QUEEN_PARA], catch_exceptions=False)
    assert f"paraphrase probability {both.score:.3f} (threshold {both.threshold:.3f})" in result.output


def test_identical_sentences_are_exact_without_the_model():
    got = check("The  cat sat on the mat.", "the cat sat on the mat.", cross_encoder="/no/such/model")
    assert (got.score, got.paraphrase, got.match) == (1.0, True, "exact")


def test_batch_keeps_input_order_and_scores_each_distinct_pair_once(local_engine):
    a = [QUEEN, SOURCE, QUEEN, "Same here."]
    b = [QUEEN_PARA, SWAP, QUEEN_PARA, "same here."]
    table = check_pairs(a, b, engine=local_engine)
    assert table["text_a"].to_pylist() == a and table["text_b"].to_pylist() == b
    scores = table["score"].to_pylist()
    assert scores[0] == scores[2] and scores[3] == 1.0
    assert table["match"].to_pylist()[3] == "exact"
    threshold = float(table.schema.metadata[b"threshold"])
    assert table["paraphrase"].to_pylist() == [s >= threshold for s in scores]
    assert table["note"].to_pylist() == ["", "'new york' and 'paris' swap places", "", ""]
    with pytest.raises(ValueError, match="as many"):
        check_pairs(["a"], [], engine=local_engine)


@pytest.mark.parametrize("suffix", ["tsv", "csv", "parquet"])
def test_a_file_of_pairs_gets_scores_and_keeps_its_columns(tmp_path, local_engine, suffix):
    table = pa.table({"id": [1, 2], "sentence1": [SOURCE, "A b c d."], "sentence2": [SWAP, "a  b c d."],
                      "label": [0, 1]})
    path = tmp_path / f"pairs.{suffix}"
    if suffix == "parquet":
        pq.write_table(table, path)
    else:
        sep = "\t" if suffix == "tsv" else ","
        write(path, f"id{sep}sentence1{sep}sentence2{sep}label\n"
              + "".join(f"{r['id']}{sep}{r['sentence1']}{sep}{r['sentence2']}{sep}{r['label']}\n" for r in table.to_pylist()))
    out = tmp_path / f"scores.{suffix}"
    got = check_file(path, out, engine=local_engine)
    assert got.column_names == ["id", "sentence1", "sentence2", "label", "score", "paraphrase", "match", "note"]
    assert got["match"].to_pylist() == ["rejected", "exact"]
    back, cols = read_pairs(out)
    assert cols == ("sentence1", "sentence2") and back.num_rows == 2
    assert back["match"].to_pylist() == ["rejected", "exact"]


def test_a_pairs_file_without_sentence_columns_is_refused(tmp_path):
    path = write(tmp_path / "pairs.csv", "x,y\n1,2\n")
    with pytest.raises(InputError, match="text_a/text_b or sentence1/sentence2"):
        read_pairs(path)
    with pytest.raises(InputError, match="--format"):
        read_pairs(write(tmp_path / "pairs.xlsx", "x"))


def test_check_command_prints_probability_and_decision():
    result = CliRunner().invoke(cli, ["check", SOURCE, SWAP], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("paraphrase probability 0.")
    assert result.output.splitlines()[0].endswith("not a paraphrase")
    result = CliRunner().invoke(cli, ["check", "The cat sat on the mat.", "the cat sat on the mat."])
    assert result.output.startswith("paraphrase probability 1.000 (threshold ")
    assert result.output.rstrip().endswith("): exact copy")


def test_check_command_batch_writes_scores(tmp_path):
    path = write(tmp_path / "in.tsv", f"text_a\ttext_b\n{SOURCE}\t{SWAP}\nSame words here.\tsame words here.\n")
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(cli, ["check", "--pairs", str(path), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "2 pairs scored, 1 paraphrases or copies; written to" in result.stderr
    assert pq.read_table(out)["match"].to_pylist() == ["rejected", "exact"]
    printed = CliRunner().invoke(cli, ["check", "--pairs", str(path)], catch_exceptions=False)
    lines = printed.stdout.splitlines()
    assert lines[0] == "text_a\ttext_b\tscore\tmatch\tnote"
    assert lines[1].endswith("\trejected\t'new york' and 'paris' swap places")
    assert lines[2] == "Same words here.\tsame words here.\t1.0000\texact\t"


@pytest.mark.parametrize("args,message", [
    ([SOURCE], "give two sentences"),
    ([SOURCE, SWAP, "--pairs", "x.tsv"], "not both"),
])
def test_check_command_usage_errors(args, message):
    result = CliRunner().invoke(cli, ["check", *args])
    assert result.exit_code == 2 and message in result.output


def test_a_tab_inside_a_sentence_cannot_go_to_tsv(tmp_path):
    from scanner.errors import OutputError
    from scanner.pair_check import write_scores

    with pytest.raises(OutputError, match=r"write \.parquet instead"):
        write_scores(pa.table({"text_a": ["one\ttwo"], "text_b": ["three"]}), tmp_path / "s.tsv")
    assert list(tmp_path.iterdir()) == []  # no partial file


def test_check_command_notes_numbers_that_differ_and_swaps():
    result = CliRunner().invoke(cli, ["check", "Add support for Python 3.12.", "Add support for Python 3.14."],
                                catch_exceptions=False)
    assert result.exit_code == 0 and result.output.splitlines()[-1] == "note: numbers differ: 3.12 vs 3.14"
    same = CliRunner().invoke(cli, ["check", QUEEN, QUEEN_PARA], catch_exceptions=False)
    assert "note:" not in same.output
    swap = CliRunner().invoke(cli, ["check", SOURCE, SWAP], catch_exceptions=False)
    assert swap.output.splitlines()[-1] == "note: 'new york' and 'paris' swap places"


def test_the_swap_rule_decides_swaps_and_can_be_turned_off():
    a = "The angle of the dance tells the bees the direction of the food relative to the sun."
    b = "The angle of the dance tells the bees the direction of the sun relative to the food."
    ruled = check(a, b)
    assert (ruled.match, ruled.paraphrase) == ("rejected", False)
    free = check(a, b, swap_rule=False)
    assert free.score == ruled.score and free.paraphrase == (free.score >= free.threshold)
    out = CliRunner().invoke(cli, ["check", a, b], catch_exceptions=False).output.splitlines()
    assert out[0].endswith("not a paraphrase" + (" (by the swap rule)" if ruled.score >= ruled.threshold else ""))
    out = CliRunner().invoke(cli, ["check", "--no-swap-rule", a, b], catch_exceptions=False).output.splitlines()
    assert out[0].endswith(": paraphrase" if free.paraphrase else ": not a paraphrase")
