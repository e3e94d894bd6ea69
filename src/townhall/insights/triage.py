"""The triage model: a resident's words -> the likely service and priority, with probabilities.

Two scikit-learn pipelines, TF-IDF over words and word pairs feeding a multinomial logistic
regression: one predicts the service code, one the priority. They learn from the scrubbed
public descriptions of past requests (see `service_requests.queries.triage_examples`), so the
model never sees the resident's own words or contact details.

The model is a file per node in the data folder (`<data_dir>/insights/triage.joblib`), written
atomically by the job `insights.train_triage`, with its held-out accuracy beside it in
`triage.json`. Only files this module wrote are ever loaded (joblib is pickle: never point it
at a file from elsewhere).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MODEL_FILE = "triage.joblib"
META_FILE = "triage.json"
MIN_EXAMPLES = 20
MAX_EXAMPLES = 30_000
HELD_OUT_SHARE = 0.2
MODEL_VERSION = 1

_cache_lock = threading.Lock()
_cache: dict[Path, tuple[int, dict[str, Any]]] = {}


class NotEnoughExamples(Exception):
    """Too few labelled requests (or only one service) to learn anything."""


def model_dir(data_dir: Path) -> Path:
    return data_dir / "insights"


def _pipeline() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(
            lowercase=True, ngram_range=(1, 2), min_df=1, sublinear_tf=True, max_features=50_000
        ),
        LogisticRegression(max_iter=1000, C=10.0),
    )


@dataclass
class TrainingResult:
    examples: int
    train_examples: int
    test_examples: int
    service_accuracy: float
    priority_accuracy: float
    majority_accuracy: float
    services: int
    seconds: float
    trained_at: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def train(
    examples: Sequence[tuple[str, str, int]], *, seed: int = 0
) -> tuple[dict[str, Any], TrainingResult]:
    """Fit both pipelines on a stratified 80% of `examples` (text, service code, priority) and
    measure accuracy on the other 20%. Raises NotEnoughExamples when there is too little to
    learn from."""
    from sklearn.model_selection import train_test_split

    started = time.perf_counter()
    rows = [(t, s, p) for t, s, p in examples if t and t.strip()]
    counts = Counter(s for _, s, _ in rows)
    if len(rows) < MIN_EXAMPLES or len(counts) < 2:
        raise NotEnoughExamples(
            f"{len(rows)} described requests in {len(counts)} services; at least "
            f"{MIN_EXAMPLES} in 2 services are needed"
        )
    # A service seen once cannot be in both halves of a stratified split.
    stratify = [s for _, s, _ in rows] if min(counts.values()) >= 2 else None
    train_rows, test_rows = train_test_split(
        rows, test_size=HELD_OUT_SHARE, random_state=seed, stratify=stratify
    )
    texts = [t for t, _, _ in train_rows]
    service_model = _pipeline().fit(texts, [s for _, s, _ in train_rows])
    test_texts = [t for t, _, _ in test_rows]
    service_hits = service_model.predict(test_texts) == [s for _, s, _ in test_rows]
    priorities = {p for _, _, p in train_rows}
    priority_model: Any = None
    if len(priorities) >= 2:
        priority_model = _pipeline().fit(texts, [p for _, _, p in train_rows])
        priority_hits = priority_model.predict(test_texts) == [p for _, _, p in test_rows]
        priority_accuracy = float(priority_hits.mean())
    else:
        only = next(iter(priorities))
        priority_accuracy = sum(1 for _, _, p in test_rows if p == only) / len(test_rows)
    majority = Counter(s for _, s, _ in train_rows).most_common(1)[0][0]
    result = TrainingResult(
        examples=len(rows),
        train_examples=len(train_rows),
        test_examples=len(test_rows),
        service_accuracy=round(float(service_hits.mean()), 4),
        priority_accuracy=round(priority_accuracy, 4),
        majority_accuracy=round(
            sum(1 for _, s, _ in test_rows if s == majority) / len(test_rows), 4
        ),
        services=len(counts),
        seconds=round(time.perf_counter() - started, 2),
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    model = {
        "version": MODEL_VERSION,
        "service": service_model,
        "priority": priority_model,
        "default_priority": Counter(p for _, _, p in train_rows).most_common(1)[0][0],
        "meta": result.as_dict(),
    }
    return model, result


def save(model: dict[str, Any], directory: Path) -> Path:
    """Write the model and its metadata atomically (a reader sees the old or the new file)."""
    import joblib

    directory.mkdir(parents=True, exist_ok=True)
    target = directory / MODEL_FILE
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".tmp", delete=False) as handle:
        joblib.dump(model, handle, compress=3)
    os.replace(handle.name, target)
    meta_tmp = directory / (META_FILE + ".tmp")
    meta_tmp.write_text(json.dumps(model["meta"], indent=2), encoding="utf-8")
    os.replace(meta_tmp, directory / META_FILE)
    return target


def status(directory: Path) -> dict[str, Any] | None:
    """The stored model's metadata (accuracy, when trained), or None when there is none."""
    try:
        return json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def load(directory: Path) -> dict[str, Any] | None:
    """The stored model, cached per file version; None when none was trained on this node."""
    import joblib

    path = directory / MODEL_FILE
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    with _cache_lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        model = joblib.load(path)  # our own file only (see the module docstring)
        if not isinstance(model, dict) or model.get("version") != MODEL_VERSION:
            return None
        _cache[path] = (stamp, model)
        return model


@dataclass
class Suggestion:
    service: str
    service_probability: float
    alternatives: list[tuple[str, float]]
    priority: int
    priority_probability: float


def suggest(model: dict[str, Any], text: str, *, alternatives: int = 3) -> Suggestion:
    """The most likely service and priority for `text`, with the next likeliest services."""
    service_model = model["service"]
    probabilities = service_model.predict_proba([text])[0]
    ranked = sorted(
        zip(service_model.classes_, probabilities, strict=True), key=lambda pair: -pair[1]
    )
    priority, priority_probability = int(model["default_priority"]), 1.0
    if model.get("priority") is not None:
        priority_probs = model["priority"].predict_proba([text])[0]
        best = int(priority_probs.argmax())
        priority = int(model["priority"].classes_[best])
        priority_probability = float(priority_probs[best])
    return Suggestion(
        service=str(ranked[0][0]),
        service_probability=round(float(ranked[0][1]), 4),
        alternatives=[(str(code), round(float(p), 4)) for code, p in ranked[1 : 1 + alternatives]],
        priority=priority,
        priority_probability=round(priority_probability, 4),
    )
