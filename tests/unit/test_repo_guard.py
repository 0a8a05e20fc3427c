"""The suite stands alone: nothing reads beside the checkout (issue: a fresh clone passes)."""

from __future__ import annotations

import ast
from pathlib import Path

import repo_guard

TESTS = Path(__file__).resolve().parents[1]


def test_reading_a_sibling_of_the_checkout_is_recorded(tmp_path: Path) -> None:
    sibling = repo_guard.ROOT.parent / "shared" / "vectors" / "did-key" / "x.json"
    before = list(repo_guard.outside_reads)
    try:
        try:
            sibling.read_bytes()
        except OSError:
            pass  # recorded whether or not the file exists
        assert any(str(sibling) in entry for entry in repo_guard.outside_reads[len(before):])
    finally:
        del repo_guard.outside_reads[len(before):]
    # Inside the repository and in temporary folders, nothing is recorded.
    assert not repo_guard.leaves_repository(str(repo_guard.ROOT / "tests" / "conftest.py"))
    assert not repo_guard.leaves_repository(str(tmp_path / "x"))


def test_no_test_path_is_built_above_the_repository() -> None:
    """`Path(__file__).parents[N]` may climb to the repository root, never above it."""
    offenders = []
    for source in TESTS.rglob("*.py"):
        if "node_modules" in source.parts:
            continue
        depth = len(source.relative_to(TESTS.parent).parts)  # parents[depth - 1] is the root
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "parents" and isinstance(node.slice, ast.Constant)
                    and isinstance(node.slice.value, int) and node.slice.value >= depth):
                offenders.append(f"{source.relative_to(TESTS.parent)}:{node.lineno}")
    assert not offenders, offenders


def test_did_key_vectors_live_in_the_repository() -> None:
    vectors = TESTS / "vectors" / "did-key"
    assert (vectors / "did-method-key_ed25519-x25519.json").is_file()
    assert "w3c-ccg/did-method-key" in (vectors / "README.md").read_text()
