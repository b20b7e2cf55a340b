"""The model card in docs/interactive.md is the benchmark's output, for the shipped weights."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from medseg.interactive.engine import universal_model_dir

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "interactive_universal.json"


def _card_table(results: dict) -> str:
    spec = importlib.util.spec_from_file_location(
        "bench_interactive", ROOT / "benchmarks" / "bench_interactive.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.card_table(results)


def test_model_card_table_is_rendered_from_the_benchmark_output() -> None:
    results = json.loads(RESULTS.read_text())
    doc = (ROOT / "docs" / "interactive.md").read_text()
    start = doc.index("<!-- card-table")
    block = doc[doc.index("\n", start) + 1 : doc.index("<!-- /card-table -->")]
    assert block.strip() == _card_table(results).strip()


def test_benchmark_output_is_for_the_shipped_weights() -> None:
    results = json.loads(RESULTS.read_text())
    config = json.loads((universal_model_dir() / "interactive.json").read_text())
    assert results["model"] == "universal"
    assert results["training"] == config["training"]["iterations"]
    assert results["training_hours"] == config["training"]["hours"]
