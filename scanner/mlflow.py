"""The scanner as an MLflow pyfunc model (the ``mlflow`` extra): ``save_model`` and ``log_model``.

    >>> import mlflow, pandas as pd, scanner.mlflow
    >>> scanner.mlflow.save_model("scanner-model")                                   # doctest: +SKIP
    >>> model = mlflow.pyfunc.load_model("scanner-model")                            # doctest: +SKIP
    >>> model.predict(pd.DataFrame({"text_a": ["I flew to Paris."], "text_b": ["I took a flight to Paris."]}))
    ...                                                                              # doctest: +SKIP

The saved model holds the verifier's weights (and, with ``index``, the reference index and its embedder) as
artifacts, so it loads offline on any machine where the scanner is installed, and ``mlflow models serve -m
PATH --env-manager local`` serves it (docs/serving.md). ``predict`` takes a DataFrame of pairs (columns
``text_a``, ``text_b``) and answers as ``scanner.check_pairs`` (score, paraphrase, match, note, threshold),
or a DataFrame of queries (column ``query``; needs ``index``) and answers as ``scanner.search``.

The model is saved as code (MLflow's "models from code", ``MODEL_CODE``), never pickled: loading it imports
``scanner.mlflow.ScannerModel``, so the scanner must be installed where it loads. This module is
``scanner.mlflow``; ``import mlflow`` below is the MLflow package (imports are absolute).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import mlflow
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
except ImportError as exc:  # pragma: no cover - the mlflow extra is part of the test extra
    raise ImportError("scanner.mlflow needs MLflow: pip install 'paraphrase-scanner[mlflow]'") from exc

from scanner import __version__
from scanner.errors import ConfigError

PAIR_COLUMNS = ("text_a", "text_b")
QUERY_COLUMN = "query"


class ScannerModel(mlflow.pyfunc.PythonModel):
    """The pyfunc model: loads the verifier (and the embedder) once from the model's artifacts."""

    def load_context(self, context: Any) -> None:
        from scanner.engine import LocalEngine
        from scanner.scanning import ScanConfig

        settings = dict(context.model_config or {})
        self.index = context.artifacts.get("index")
        self.top_k, self.min_cosine = int(settings.pop("top_k", 10)), float(settings.pop("min_cosine", 0.5))
        embedder = context.artifacts.get("embedder", settings.pop("embedder", None))  # "hashing" has no files
        self.config = ScanConfig.from_options(cross_encoder=context.artifacts["cross_encoder"], embedder=embedder,
                                              cache=False, **settings)
        self.engine = LocalEngine()

    # a DataFrame hint: MLflow then passes a DataFrame and infers no schema (the model takes pairs or queries)
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if set(PAIR_COLUMNS) <= set(frame.columns):
            return self.check(frame)
        if QUERY_COLUMN in frame.columns:
            return self.search(frame)
        raise MlflowException(f"the input has columns {list(frame.columns)}: send pairs as columns text_a and text_b"
                              + (", or queries as a column query" if self.index else ""),
                              error_code=INVALID_PARAMETER_VALUE)

    def check(self, frame: pd.DataFrame) -> pd.DataFrame:
        from scanner.pair_check import check_pairs

        v = self.config.verify
        a, b = (["" if x is None else str(x) for x in frame[c]] for c in PAIR_COLUMNS)
        table = check_pairs(a, b, threshold=v.threshold, cross_encoder=v.model, device=v.device, engine=self.engine,
                            both_orders=v.both_orders, swap_rule=v.swap_rule)
        out = table.select(["score", "paraphrase", "match", "note"]).to_pandas()
        out["threshold"] = float(table.schema.metadata[b"threshold"])
        return out

    def search(self, frame: pd.DataFrame) -> pd.DataFrame:
        from scanner.reference import search

        if self.index is None:
            raise MlflowException("this model was saved without a reference index: save it with "
                                  "scanner.mlflow.save_model(path, index=DIR) to answer queries",
                                  error_code=INVALID_PARAMETER_VALUE)
        queries = [str(q) for q in frame[QUERY_COLUMN]]
        return search(queries, self.index, top_k=self.top_k, min_cosine=self.min_cosine, config=self.config,
                      engine=self.engine).to_pandas()


def _model_arguments(cross_encoder: str | None, index: str | os.PathLike[str] | None, embedder: str | None,
                     threshold: float | None, both_orders: bool, swap_rule: bool, top_k: int,
                     min_cosine: float) -> dict[str, Any]:
    """The arguments of ``mlflow.pyfunc.save_model``/``log_model``: artifacts (the weights, the index) and
    the settings (``model_config``), checked before anything is written."""
    from scanner.embed import DEFAULT_EMBEDDER, HASHING, resolve_embedder
    from scanner.index import ReferenceIndex
    from scanner.modelfiles import safe_model_folder
    from scanner.verify import DEFAULT_CROSS_ENCODER, VerifyConfig

    VerifyConfig(threshold=threshold)  # a threshold outside [0, 1] fails here, not at load time
    verifier = safe_model_folder(cross_encoder or DEFAULT_CROSS_ENCODER, "cross-encoder", "cross_encoder")
    artifacts = {"cross_encoder": str(verifier)}
    settings: dict[str, Any] = {"threshold": threshold, "both_orders": both_orders, "swap_rule": swap_rule,
                                "top_k": top_k, "min_cosine": min_cosine}
    if index is not None:
        if not Path(index).is_dir():
            raise ConfigError(f"index {str(index)!r} is not a local folder: pass the folder of an index built by "
                              "scan index (copy a remote one locally first)")
        embedder = embedder or DEFAULT_EMBEDDER
        ReferenceIndex(index).check_embedder(embedder)
        artifacts["index"] = str(Path(index))
        if embedder == HASHING:
            settings["embedder"] = HASHING
        else:
            artifacts["embedder"] = str(safe_model_folder(resolve_embedder(embedder), "embedder", "embedder"))
    settings = {k: v for k, v in settings.items() if v is not None}
    requirements = [f"paraphrase-scanner=={__version__}", f"mlflow-skinny=={mlflow.__version__}"]
    return {"artifacts": artifacts, "model_config": settings, "pip_requirements": requirements}


#: the model's code, saved with it (MLflow's "models from code"): loading runs these lines, nothing is unpickled
MODEL_CODE = """\
import mlflow

from scanner.mlflow import ScannerModel

mlflow.models.set_model(ScannerModel())
"""


@contextmanager
def model_code() -> Iterator[str]:
    """A file holding ``MODEL_CODE``, for the duration of a save."""
    with tempfile.TemporaryDirectory(prefix="scanner-mlflow-") as folder:
        path = Path(folder) / "scanner_model.py"
        path.write_text(MODEL_CODE, encoding="utf-8")
        yield str(path)


def save_model(path: str | os.PathLike[str], *, cross_encoder: str | None = None,
               index: str | os.PathLike[str] | None = None, embedder: str | None = None,
               threshold: float | None = None, both_orders: bool = False, swap_rule: bool = True, top_k: int = 10,
               min_cosine: float = 0.5, **kwargs: Any) -> None:
    """Save the scanner as an MLflow pyfunc model in the folder ``path`` (which must not exist yet).

    ``cross_encoder``: the verifier folder (default: the shipped model); ``index``: a local reference index to
    answer queries with, saved with its ``embedder`` (default: all-MiniLM-L6-v2); ``threshold``, ``both_orders``,
    ``swap_rule``: as for ``scan check``; ``top_k``, ``min_cosine``: as for ``scan search``. ``kwargs`` go to
    ``mlflow.pyfunc.save_model`` (e.g. ``signature``, ``metadata``)."""
    arguments = _model_arguments(cross_encoder, index, embedder, threshold, both_orders, swap_rule, top_k, min_cosine)
    with model_code() as code:
        mlflow.pyfunc.save_model(str(path), python_model=code, **arguments, **kwargs)


def log_model(name: str = "scanner", *, cross_encoder: str | None = None,
              index: str | os.PathLike[str] | None = None, embedder: str | None = None,
              threshold: float | None = None, both_orders: bool = False, swap_rule: bool = True, top_k: int = 10,
              min_cosine: float = 0.5, **kwargs: Any) -> Any:
    """Log the scanner as a pyfunc model to the active MLflow run (``save_model``'s arguments); returns
    MLflow's ``ModelInfo`` (its ``model_uri`` loads it)."""
    arguments = _model_arguments(cross_encoder, index, embedder, threshold, both_orders, swap_rule, top_k, min_cosine)
    with model_code() as code:
        return mlflow.pyfunc.log_model(name=name, python_model=code, **arguments, **kwargs)
