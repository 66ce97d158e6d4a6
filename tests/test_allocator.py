"""The allocator of a CPU run: finding jemalloc, the hint, and convert's restart under it."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_allocator_advice_names_an_installed_jemalloc(tmp_path, monkeypatch):
    from llm2vec_lite.runtime.allocator import allocator_advice

    monkeypatch.setattr("sys.platform", "linux")
    glibc_only = "7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
    (tmp_path / "libjemalloc.so.2").write_bytes(b"")
    advice = allocator_advice(glibc_only, (str(tmp_path),))
    assert advice is not None and f"LD_PRELOAD={tmp_path / 'libjemalloc.so.2'}" in advice


def test_allocator_advice_says_how_to_install_when_none_is_found(tmp_path, monkeypatch):
    from llm2vec_lite.runtime.allocator import allocator_advice

    monkeypatch.setattr("sys.platform", "linux")
    advice = allocator_advice("/usr/lib/x86_64-linux-gnu/libc.so.6\n", (str(tmp_path),))
    assert advice is not None and "apt install libjemalloc2" in advice


def test_allocator_advice_is_silent_when_jemalloc_or_tcmalloc_is_loaded_or_off_linux(tmp_path, monkeypatch):
    from llm2vec_lite.runtime.allocator import allocator_advice

    monkeypatch.setattr("sys.platform", "linux")
    for lib in ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/libtcmalloc_minimal.so.4.5.9"):
        assert allocator_advice(f"7f00-7f01 r-xp 0 08:01 1 {lib}\n", (str(tmp_path),)) is None
    monkeypatch.setenv("LLM2VEC_LITE_ALLOCATOR", "system")  # the user chose glibc: no nagging
    assert allocator_advice("", (str(tmp_path),)) is None
    monkeypatch.delenv("LLM2VEC_LITE_ALLOCATOR")
    monkeypatch.setattr("sys.platform", "darwin")
    assert allocator_advice("", (str(tmp_path),)) is None


def test_installed_allocator_takes_the_first_name_found_in_the_first_folder(tmp_path):
    from llm2vec_lite.runtime.allocator import installed_allocator

    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    assert installed_allocator(library_dirs=(str(first), str(second))) is None
    (second / "libtcmalloc.so.4").write_bytes(b"")
    (second / "libjemalloc.so.2").write_bytes(b"")
    assert installed_allocator(library_dirs=(str(first), str(second))) == second / "libjemalloc.so.2"
    assert installed_allocator(("libtcmalloc.so.4",), (str(first), str(second))) == second / "libtcmalloc.so.4"


def _restart(env, tmp_path, monkeypatch, installed=True):
    from llm2vec_lite.runtime import allocator

    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # as at the command's start
    if installed:
        (tmp_path / "libjemalloc.so.2").write_bytes(b"")
    calls = []
    found = allocator.restart_with_jemalloc(env, lambda *a: calls.append(a), (str(tmp_path),))
    return found, calls


def test_convert_restarts_with_jemalloc_preloaded_and_the_same_command(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.orig_argv", ["/py", "/bin/llm2vec-lite", "convert", "r.yaml", "stages.0.steps=3"])
    found, calls = _restart({"LD_PRELOAD": "/opt/other.so", "HOME": "/h"}, tmp_path, monkeypatch)
    assert found == str(tmp_path / "libjemalloc.so.2") and len(calls) == 1
    exe, args, env = calls[0]
    assert exe == sys.executable and args == [sys.executable, "/bin/llm2vec-lite", "convert", "r.yaml", "stages.0.steps=3"]
    assert env["LD_PRELOAD"] == f"{found}:/opt/other.so" and env["HOME"] == "/h"
    assert env["_LLM2VEC_LITE_RESTARTED"] == "1"  # the restarted process does not restart again


@pytest.mark.parametrize(
    "env",
    [
        {"LLM2VEC_LITE_ALLOCATOR": "system"},
        {"_LLM2VEC_LITE_RESTARTED": "1"},
        {"LD_PRELOAD": "/usr/lib/libtcmalloc.so.4"},
        {"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"},
    ],
)
def test_no_restart_when_opted_out_restarted_or_preloaded(env, tmp_path, monkeypatch):
    assert _restart(env, tmp_path, monkeypatch) == (None, [])


def test_without_jemalloc_the_restart_tunes_glibc_unless_the_user_did(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.orig_argv", ["/py", "/bin/llm2vec-lite", "convert", "r.yaml"])
    found, calls = _restart({"HOME": "/h"}, tmp_path, monkeypatch, installed=False)
    assert found == "glibc" and len(calls) == 1
    env = calls[0][2]
    assert env["MALLOC_ARENA_MAX"] == "2" and env["MALLOC_MMAP_THRESHOLD_"] == "262144"
    assert "LD_PRELOAD" not in env and env["_LLM2VEC_LITE_RESTARTED"] == "1" and env["HOME"] == "/h"
    assert _restart({"MALLOC_ARENA_MAX": "4"}, tmp_path, monkeypatch, installed=False) == (None, [])


def test_no_restart_after_torch_loaded(tmp_path, monkeypatch):
    from llm2vec_lite.runtime import allocator

    (tmp_path / "libjemalloc.so.2").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "torch", object())
    assert allocator.restart_with_jemalloc({}, lambda *a: None, (str(tmp_path),)) is None


def test_the_command_restarts_itself_only_for_a_real_convert(tmp_path):
    """Through the real entry point: --dry-run and other verbs never restart (stderr says it)."""
    script = (
        "import sys, llm2vec_lite.runtime.allocator as a\n"
        "a.restart_with_jemalloc = lambda *x, **k: print('RESTART', 'torch' in sys.modules, file=sys.stderr)\n"
        "from llm2vec_lite.cli import main\n"
        "sys.argv = ['llm2vec-lite', *sys.argv[1:]]\n"
        "raise SystemExit(main())\n"
    )
    def run(*args):
        return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=tmp_path)

    assert "RESTART False" in run("convert", "missing.yaml").stderr  # called before torch loads
    assert "RESTART" not in run("convert", "missing.yaml", "--dry-run").stderr
    assert "RESTART" not in run("recipe", "--help").stderr
    assert "RESTART" not in run("convert", "--help").stderr
