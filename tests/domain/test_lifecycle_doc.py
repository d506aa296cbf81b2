"""docs/lifecycle.md draws the lifecycle tables; it must say what the tables say now."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_lifecycle_doc.py"
DOC = ROOT / "docs" / "lifecycle.md"


def load_script():
    spec = importlib.util.spec_from_file_location("gen_lifecycle_doc", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_doc_is_what_the_tables_draw():
    gen = load_script()
    current = DOC.read_text(encoding="utf-8")
    assert gen.render(current) == current, (
        "docs/lifecycle.md is stale: run .venv/bin/python scripts/gen_lifecycle_doc.py"
    )


def test_the_doc_holds_both_diagrams_verbatim():
    from paymux.domain.lifecycle import mermaid, refund_mermaid

    current = DOC.read_text(encoding="utf-8")
    assert f"```mermaid\n{mermaid()}```" in current
    assert f"```mermaid\n{refund_mermaid()}```" in current


def test_the_script_rewrites_only_the_diagrams(tmp_path):
    gen = load_script()
    stale = DOC.read_text(encoding="utf-8").replace("capture started", "capture began")
    doc = tmp_path / "lifecycle.md"
    doc.write_text(stale, encoding="utf-8")
    assert gen.main(["--check", "--doc", str(doc)]) == 1
    assert doc.read_text(encoding="utf-8") == stale  # --check writes nothing
    assert gen.main(["--doc", str(doc)]) == 0
    assert doc.read_text(encoding="utf-8") == DOC.read_text(encoding="utf-8")
    assert gen.main(["--check", "--doc", str(doc)]) == 0


def test_a_doc_without_its_markers_is_an_error():
    gen = load_script()
    with pytest.raises(ValueError, match="refund"):
        gen.render("<!-- BEGIN GENERATED payment -->\n<!-- END GENERATED payment -->\n")
