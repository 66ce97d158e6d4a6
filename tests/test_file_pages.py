"""page_out: file-backed weight pages leave the resident set, values stay, anonymous memory is left."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from llm2vec_lite.runtime.file_pages import file_backed_ranges, page_out

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and madvise")


def _mapping_rss_kib(address: int) -> int:
    """Resident KiB of the mapping of this process that holds ``address`` (from smaps)."""
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                start, end = (int(x, 16) for x in head.split("-"))
                inside = start <= address < end
            elif inside and head == "Rss:":
                return int(line.split()[1])
    raise AssertionError("address not mapped")


def test_file_backed_ranges_reads_only_file_mappings(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text(
        "7f0000000000-7f0000100000 r--p 00000000 08:01 1234 /data/model.safetensors\n"
        "7e0000000000-7e0000001000 rw-p 00000000 00:00 0 \n"
        "7d0000000000-7d0000002000 rw-p 00000000 00:00 0 [heap]\n"
        "7c0000000000-7c0000003000 r-xp 00000000 08:01 99 /usr/lib/libc.so.6\n"
    )
    assert file_backed_ranges(str(maps)) == [(0x7C0000000000, 0x7C0000003000), (0x7F0000000000, 0x7F0000100000)]
    assert file_backed_ranges(str(tmp_path / "missing")) == []


@linux_only
def test_page_out_drops_a_mapped_files_pages_and_keeps_its_values(tmp_path):
    path = tmp_path / "weights.bin"
    values = np.random.default_rng(0).standard_normal(2**21).astype(np.float32)  # 8 MiB
    values.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="c")  # private file mapping, as safetensors maps
    tensor = torch.from_numpy(mapped)
    expected = float(tensor.double().sum())  # reads every page: all resident
    before = _mapping_rss_kib(tensor.data_ptr())
    assert before >= 7 * 1024

    advised = page_out([tensor, tensor])  # the same tensor twice is advised once
    if advised == 0:
        pytest.skip("this kernel has no MADV_PAGEOUT")
    assert 7 * 2**20 <= advised <= 8 * 2**20
    assert _mapping_rss_kib(tensor.data_ptr()) < before / 4
    assert float(tensor.double().sum()) == expected  # faulted back in from the file, unchanged
    assert torch.equal(tensor, torch.from_numpy(values))


@linux_only
def test_page_out_leaves_anonymous_memory_and_small_tensors():
    heap = torch.randn(2**21)  # 8 MiB on the heap: no file behind it, would go to swap
    assert page_out([heap]) == 0
    assert page_out([torch.randn(8)]) == 0
