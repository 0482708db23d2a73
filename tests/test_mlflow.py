"""The MLflow pyfunc flavour: save, load offline and predict, with a local file store and no tracking server."""

from __future__ import annotations

import pytest

mlflow = pytest.importorskip("mlflow")
pd = pytest.importorskip("pandas")

import scanner.mlflow  # noqa: E402
from scanner.errors import ConfigError  # noqa: E402

PAIRS = pd.DataFrame({
    "text_a": ["I took a flight from New York to Paris.", "The cat sat on the mat.",
               "Volcanoes form where molten rock from deep inside the Earth rises to the surface."],
    "text_b": ["I flew to Paris from New York.", "the  cat sat on the mat.",
               "Molten rock rises to the surface where volcanoes form."],
})
VOLCANO = "Volcanoes form where molten rock from deep inside the Earth rises to the surface."


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tiny_verifier, hashing_index):
    path = tmp_path_factory.mktemp("mlflow") / "model"
    scanner.mlflow.save_model(path, cross_encoder=str(tiny_verifier), index=hashing_index, embedder="hashing",
                              top_k=5, min_cosine=0.2, threshold=0.0)
    return path


def test_saved_model_loads_and_checks_pairs_as_check_pairs(saved, tiny_verifier):
    from scanner.pair_check import check_pairs

    got = mlflow.pyfunc.load_model(str(saved)).predict(PAIRS)
    expected = check_pairs(list(PAIRS["text_a"]), list(PAIRS["text_b"]), cross_encoder=str(tiny_verifier),
                           threshold=0.0)
    assert list(got.columns) == ["score", "paraphrase", "match", "note", "threshold"]
    assert got["match"].tolist() == expected["match"].to_pylist() and got["match"][1] == "exact"
    assert got["score"].tolist() == pytest.approx(expected["score"].to_pylist(), abs=1e-5)
    assert set(got["threshold"]) == {0.0}
    # the weights travel with the model: the artifact is a copy, not the original folder
    assert (saved / "artifacts").is_dir() and list((saved / "artifacts").rglob("*.safetensors"))


def test_saved_model_answers_queries_as_search(saved, hashing_index, tiny_verifier):
    from scanner.reference import search

    model = mlflow.pyfunc.load_model(str(saved))
    got = model.predict(pd.DataFrame({"query": [VOLCANO.lower()]}))
    expected = search([VOLCANO.lower()], hashing_index, threshold=0.0, top_k=5, min_cosine=0.2, embedder="hashing",
                      cross_encoder=str(tiny_verifier), engine="local").to_pandas()
    assert got[["query", "rank", "doc", "index", "match"]].equals(expected[["query", "rank", "doc", "index", "match"]])
    assert got["text"][0] == VOLCANO and got["match"][0] == "exact"


def test_wrong_columns_are_refused_with_the_columns_to_send(saved):
    model = mlflow.pyfunc.load_model(str(saved))
    with pytest.raises(mlflow.exceptions.MlflowException, match="text_a and text_b"):
        model.predict(pd.DataFrame({"sentence": ["A b c d."]}))


def test_log_model_to_a_local_file_store_and_load_it_back(tmp_path, tiny_verifier, monkeypatch):
    # MLflow 3 keeps the file store (mlruns/) only on request; the database stores need the full mlflow package
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    try:
        with mlflow.start_run():
            info = scanner.mlflow.log_model("verifier", cross_encoder=str(tiny_verifier))
        model = mlflow.pyfunc.load_model(info.model_uri)
    finally:
        mlflow.set_tracking_uri(None)
    got = model.predict(PAIRS)
    assert got["match"][1] == "exact" and got["threshold"][0] == 0.5  # the tiny model records no threshold
    with pytest.raises(mlflow.exceptions.MlflowException, match="without a reference index"):
        model.predict(pd.DataFrame({"query": ["Bees dance."]}))
    assert not list((tmp_path / "mlruns").rglob("*.pkl"))  # saved as code, nothing pickled


def test_a_remote_index_or_a_bad_threshold_fails_before_anything_is_written(tmp_path, tiny_verifier):
    with pytest.raises(ConfigError, match="not a local folder"):
        scanner.mlflow.save_model(tmp_path / "m1", cross_encoder=str(tiny_verifier), index="s3://bucket/index")
    with pytest.raises(ConfigError, match="threshold"):
        scanner.mlflow.save_model(tmp_path / "m2", cross_encoder=str(tiny_verifier), threshold=1.5)
    assert not (tmp_path / "m1").exists() and not (tmp_path / "m2").exists()
