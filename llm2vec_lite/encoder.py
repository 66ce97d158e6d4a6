"""The drop-in text encoder: a (bidirectional) decoder, a pooling mode and optional instructions.

Usage::

    from llm2vec_lite import Encoder

    enc = Encoder.from_pretrained("out/final")            # a folder written by save_pretrained
    enc = Encoder.from_pretrained("HuggingFaceTB/SmolLM2-135M")   # or any supported decoder
    vecs = enc.encode(["a sentence", "another one"])      # (2, dim) float32, unit length
    q = enc.encode("how do cats sleep?", instruction="Instruct: Retrieve passages\\nQuery: ")
    enc.save_pretrained("out/encoder")                    # also loads with SentenceTransformer(...)

Why it is fast without tricks: texts are tokenized once, sorted by length and padded per batch only
to the longest text of that batch; the forward runs under ``torch.no_grad`` with bf16 autocast
where the hardware has bf16 matmul units, each weight cast to bf16 once for the whole call (not
under ``torch.inference_mode``: it turns autocast's cast cache off, and re-casting every weight for
every batch cost a quarter of the time on short sentences); the base model is called without its
LM head and without ``output_hidden_states``.

A saved folder is at once:

- a Hugging Face model folder (``config.json`` with ``is_causal: false``, safetensors, tokenizer),
  so ``AutoModel.from_pretrained(folder)`` gives the bidirectional backbone;
- a sentence-transformers folder (``modules.json``, ``sentence_bert_config.json``,
  ``1_Pooling/config.json``, ``2_Normalize``, ``config_sentence_transformers.json`` with the
  instructions as ``prompts``);
- an llm2vec-lite folder (``llm2vec_lite.json``: pooling, max_length, instructions, version).

References: BehnamGhader et al. 2024, "LLM2Vec", arXiv:2404.05961 (bidirectional attention,
mean pooling, instructions excluded from pooling); Wang et al. 2023, "Improving Text Embeddings
with Large Language Models", arXiv:2401.00368 (the ``Instruct: ...\\nQuery: `` format).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from llm2vec_lite.errors import UsageError
from llm2vec_lite.pooling import POOLING_MODES, check_pooling, embed, needs_eos
from llm2vec_lite.projection import PROJECTION_DIR, Projection, load_projection
from llm2vec_lite.runtime.policy import bf16_is_fast, cpu_has_fast_bf16
from llm2vec_lite.tokenization import PaddingSide, TokenizedRow, _pad_id, encode_rows, pad_rows

logger = logging.getLogger(__name__)

SETTINGS_FILE = "llm2vec_lite.json"
_SETTINGS_FORMAT = 1

# our pooling name -> sentence-transformers' Pooling.pooling_mode
_ST_POOLING = {"mean": "mean", "weighted_mean": "weightedmean", "last_token": "lasttoken", "first_token": "cls"}

ConvertTo = Literal["numpy", "torch"]




def _backbone(model):
    """The base transformer of a ``*ForCausalLM`` (no LM head to run); other models unchanged."""
    from transformers import PreTrainedModel

    base = getattr(model, "base_model", None)
    if isinstance(model, PreTrainedModel) and isinstance(base, PreTrainedModel) and base is not model:
        return base
    return model


class Encoder:
    """A text encoder: a decoder made bidirectional, a pooling mode and optional instructions.

    Args:
        model: a Hugging Face base model or ``*ForCausalLM`` (its base model is used). Merge LoRA
            adapters first (``merge_and_unload()``) if you want to save it.
        tokenizer: the matching fast tokenizer.
        pooling: one of ``mean``, ``weighted_mean``, ``last_token``, ``first_token``.
        max_length: texts longer than this many tokens (instruction included) are truncated.
        query_instruction: prefix used by :meth:`encode_queries` and saved as the
            sentence-transformers ``query`` prompt (E5 style: ``"Instruct: {task}\\nQuery: "``).
        document_instruction: prefix used by :meth:`encode_documents` (usually ``None``).
        autocast: ``None`` (auto: bf16 on CUDA and on CPUs with AMX/AVX512-BF16 when the weights
            are float32), ``True`` (bf16 autocast always) or ``False`` (run in the weights' dtype).
        bidirectional: whether the model attends both ways; ``None`` asks the model's patch
            (:func:`llm2vec_lite.patches.is_bidirectional`). Saved with the folder so the causal
            baseline stays causal.
        window: the sliding-window choice the model was patched with (``"full"`` or ``"keep"``,
            docs/patches.md); saved so :meth:`from_pretrained` re-patches the same way.
        projection: a fitted map applied after pooling (:mod:`llm2vec_lite.projection`, e.g.
            whitening); saved as the ``projection/`` module that sentence-transformers applies too.
        compile: run every transformer block through ``torch.compile`` (compiled on the first
            :meth:`encode`, about half a minute on a CPU). It fuses the element-wise work around
            the matmuls, a third of a pass over 500-token texts on a 2-core bf16 CPU: up to 1.8x
            faster there, 1.0-1.4x at the median; short sentences no faster (docs/performance.md).
            An option to try for long texts that take minutes, off by default.
            Vectors match the plain path within float rounding.

    Raises:
        UsageError: If ``pooling`` or ``window`` is unknown or ``max_length`` < 1 (a ``ValueError``),
            or ``compile`` is asked for on a CPU without a C++ compiler.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        pooling: str = "mean",
        max_length: int = 512,
        query_instruction: str | None = None,
        document_instruction: str | None = None,
        autocast: bool | None = None,
        bidirectional: bool | None = None,
        window: str = "full",
        projection: Projection | None = None,
        compile: bool = False,
    ) -> None:
        from llm2vec_lite.arguments import check_max_length, check_window
        from llm2vec_lite.patches import is_bidirectional

        check_pooling(pooling)
        check_max_length(max_length)
        self.window = check_window(window)
        self.model = _backbone(model)
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_length = int(max_length)
        self.query_instruction = query_instruction
        self.document_instruction = document_instruction
        self.autocast = autocast
        if bidirectional is None:
            bidirectional = is_bidirectional(self.model)
        self.bidirectional = bool(bidirectional)
        if projection is not None and projection.in_dim != self.hidden_size:
            raise UsageError(
                f"projection expects {projection.in_dim}-dim vectors but the model's hidden size is {self.hidden_size}"
            )
        self.projection = projection
        if compile:
            self.compile()
        # Right padding by default; left gives the same vectors (tests check it), some kernels prefer it.
        self.padding_side: PaddingSide = "right"

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | os.PathLike,
        *,
        pooling: str | None = None,
        max_length: int | None = None,
        dtype: str | torch.dtype | None = None,
        device: str | torch.device | None = None,
        attn_implementation: str | None = None,
        gguf_file: str | None = None,
        bidirectional: bool | None = None,
        window: str | None = None,
        num_layers: int | None = None,
        compile: bool = False,
        **hf_kwargs: Any,
    ) -> Encoder:
        """Load an encoder folder, a plain decoder (hub id or folder) or a GGUF file.

        A folder written by :meth:`save_pretrained` brings its own pooling, max_length,
        instructions and attention direction; arguments given here override them. A plain decoder
        gets the bidirectional patch and mean pooling.

        Args:
            path_or_id: encoder folder, model folder, hub id, or a path ending in ``.gguf``.
            pooling: override the pooling mode (default: the folder's, else ``mean``).
            max_length: override the truncation length (default: the folder's, else 512).
            dtype: weight dtype (``"float32"``, ``"bfloat16"``, ``"auto"``); ``None`` = float32.
            device: where to put the model (``"cpu"``, ``"cuda"``...).
            attn_implementation: ``sdpa`` (transformers' default), ``eager``, ``flash_attention_2``.
            gguf_file: GGUF file name inside ``path_or_id``.
            bidirectional: ``None`` = the folder's setting, else ``True``; ``False`` loads the
                causal baseline.
            window: ``None`` = the folder's saved window (``"full"`` for plain decoders), or
                ``"full"`` / ``"keep"`` (docs/patches.md).
            num_layers: keep only the first N transformer blocks: a decoder cut where its vectors
                are best (a recipe's ``num_layers``, untrained). ``None`` keeps them all.
            compile: compile the transformer blocks for faster encoding (see :class:`Encoder`).
            **hf_kwargs: passed to ``from_pretrained`` (``revision``, ``trust_remote_code``...).
                Remote code only runs when you pass ``trust_remote_code=True``.

        Returns:
            An :class:`Encoder`.

        Raises:
            FileNotFoundError: If ``path_or_id`` is a folder with neither ``config.json`` nor a
                ``.gguf`` file, or a ``.gguf`` path that does not exist.
            UsageError: If ``pooling``, ``max_length``, ``dtype``, ``device`` or ``window`` cannot
                work (checked before anything loads).
            ModelError: If the folder's ``llm2vec_lite.json`` is malformed.
            UnsupportedArchitectureError: If the model family has no bidirectional patch.
        """
        from llm2vec_lite.arguments import check_device, check_dtype, check_max_length, check_window
        from llm2vec_lite.modeling import load_model

        if pooling is not None:
            check_pooling(pooling)
        check_max_length(max_length)
        check_dtype(dtype)
        check_device(device)
        if window is not None:
            check_window(window)
        if compile:
            _check_compiler(device or "cpu")
        path = os.path.expanduser(os.fspath(path_or_id))
        settings: dict[str, Any] = {}
        if os.path.isdir(path):
            settings = _read_settings(path)
            if gguf_file is None and not os.path.isfile(os.path.join(path, "config.json")):
                gguf_file = _single_gguf(path)
        projection = load_projection(path) if os.path.isdir(path) else None
        if bidirectional is None:
            bidirectional = bool(settings.get("bidirectional", True))
        window = window or settings.get("window", "full")
        model, tokenizer = load_model(
            path,
            head="base",
            dtype=dtype,
            attn_implementation=attn_implementation,
            gguf_file=gguf_file,
            device=device,
            bidirectional=bidirectional,
            window=window,
            num_layers=num_layers,
            **hf_kwargs,
        )
        model.eval()
        return cls(
            model,
            tokenizer,
            pooling=pooling or settings.get("pooling", "mean"),
            max_length=max_length or settings.get("max_length", 512),
            query_instruction=settings.get("query_instruction"),
            document_instruction=settings.get("document_instruction"),
            bidirectional=bidirectional,
            window=window,
            projection=projection,
            compile=compile,
        )

    # ------------------------------------------------------------------ encoding
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def hidden_size(self) -> int:
        """Length of the pooled hidden states (before any projection)."""
        size = getattr(getattr(self.model, "config", None), "hidden_size", None)
        return int(size) if size else int(self.model.get_input_embeddings().embedding_dim)

    @property
    def dim(self) -> int:
        """Length of the vectors :meth:`encode` returns (the projection's output size when there is one)."""
        return self.projection.out_dim if self.projection is not None else self.hidden_size

    def encode(
        self,
        texts: str | Sequence[str],
        *,
        batch_size: int = 32,
        instruction: str | None = None,
        normalize: bool = True,
        convert_to: ConvertTo = "numpy",
        show_progress: bool | None = None,
        autocast: bool | None = None,
    ) -> np.ndarray | torch.Tensor:
        """Embed texts: (n, dim) float32, rows in the order given; a single string gives (dim,).

        Args:
            texts: a string or a sequence of strings (empty strings are fine).
            batch_size: texts per forward pass; the vectors do not depend on it.
            instruction: prefix attended to but left out of pooling, e.g.
                ``"Instruct: Given a question, retrieve passages that answer it\\nQuery: "``.
            normalize: scale each vector to unit length (cosine = dot product).
            convert_to: ``"numpy"`` or ``"torch"`` (a CPU tensor).
            show_progress: tqdm bar; ``None`` shows one when there are more than 8 batches.
            autocast: override the encoder's ``autocast`` setting for this call.

        Returns:
            ``np.ndarray`` or ``torch.Tensor`` of float32, shape (n, dim) or (dim,).

        Raises:
            TypeError: If an item of ``texts`` is not a string (the message names its index).
            ValueError: If ``batch_size`` < 1 or ``convert_to`` is unknown.
        """
        single = isinstance(texts, str)
        items = [texts] if single else _check_texts(texts)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if convert_to not in ("numpy", "torch"):
            raise ValueError(f"convert_to must be 'numpy' or 'torch', got {convert_to!r}")

        rows = encode_rows(
            self.tokenizer,
            items,
            max_length=self.max_length,
            instruction=instruction,
            add_eos=needs_eos(self.pooling),
        )
        n_cut = sum(r.truncated for r in rows)
        if n_cut:
            logger.warning(
                "%d of %d texts were longer than max_length=%d tokens and were truncated; "
                "raise max_length (Encoder(max_length=...) or from_pretrained(max_length=...)) to keep them whole.",
                n_cut,
                len(rows),
                self.max_length,
            )
        out = self._embed_rows(rows, batch_size=batch_size, show_progress=show_progress, autocast=autocast)
        if normalize:
            out = F.normalize(out, p=2, dim=-1)
        if single:
            out = out[0]
        return out.numpy() if convert_to == "numpy" else out

    def encode_queries(self, texts: str | Sequence[str], **kwargs: Any) -> np.ndarray | torch.Tensor:
        """:meth:`encode` with ``instruction=self.query_instruction``."""
        return self.encode(texts, instruction=self.query_instruction, **kwargs)

    def encode_documents(self, texts: str | Sequence[str], **kwargs: Any) -> np.ndarray | torch.Tensor:
        """:meth:`encode` with ``instruction=self.document_instruction``."""
        return self.encode(texts, instruction=self.document_instruction, **kwargs)

    @property
    def compiled(self) -> bool:
        """Whether the blocks run compiled now: read from the model, so ``uncompile_blocks`` shows."""
        from llm2vec_lite.runtime.block_compile import blocks_compiled

        return blocks_compiled(self.model)

    def compile(self) -> Encoder:
        """Compile the transformer blocks (once; the compiled code is built on the next encode).

        Returns:
            This encoder, so ``Encoder.from_pretrained(path).compile()`` reads as one step.

        Raises:
            UsageError: If the model is on a CPU and there is no C++ compiler for inductor.
        """
        from llm2vec_lite.runtime.block_compile import compile_blocks

        if not self.compiled:
            _check_compiler(self.device)
            compile_blocks(self.model)
        return self

    def _use_autocast(self, override: bool | None) -> bool:
        choice = self.autocast if override is None else override
        if choice is not None:
            return bool(choice)
        weight_dtype = next(self.model.parameters()).dtype
        if weight_dtype != torch.float32:
            return False  # already low precision: nothing to gain
        return bf16_is_fast(self.device)

    def _embed_rows(
        self,
        rows: list[TokenizedRow],
        *,
        batch_size: int,
        show_progress: bool | None,
        autocast: bool | None,
    ) -> torch.Tensor:
        """Forward length-sorted batches and scatter the pooled vectors back: (n, dim) float32."""
        out = torch.empty((len(rows), self.dim), dtype=torch.float32)  # (n, dim)
        if not rows:
            return out
        # Longest first: a batch that does not fit in memory fails at once, not after an hour.
        order = sorted(range(len(rows)), key=lambda i: len(rows[i].ids), reverse=True)
        starts = range(0, len(order), batch_size)
        if show_progress is None:
            show_progress = len(starts) > 8
        device = self.device
        pad_id = _pad_id(self.tokenizer)
        use_amp = self._use_autocast(autocast)
        was_training = self.model.training
        self.model.eval()
        try:
            # One autocast region for the whole call, under no_grad: the bf16 copies of the weights
            # are made once and cached (inference_mode would disable that cache).
            amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp)
            with torch.no_grad(), amp:
                for start in _progress(starts, show_progress):
                    idx = order[start : start + batch_size]
                    batch = pad_rows([rows[i] for i in idx], pad_id=pad_id, padding_side=self.padding_side)
                    batch = batch.to(device)
                    vecs = embed(self.model, batch, self.pooling, projection=self.projection)  # (batch, dim)
                    out[torch.tensor(idx)] = vecs.float().cpu()
        finally:
            self.model.train(was_training)
        return out

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, folder: str | os.PathLike, *, model_card: str | None = None) -> Path:
        """Write a folder that loads with :meth:`from_pretrained`, ``SentenceTransformer`` and ``AutoModel``.

        Args:
            folder: where to write (created if missing; existing files are overwritten).
            model_card: text of ``README.md``; a default card is written when ``None``.

        Returns:
            The folder as a ``Path``.

        Raises:
            ValueError: If the model still carries unmerged peft adapters.
        """
        if hasattr(self.model, "peft_config"):
            raise ValueError(
                "The encoder's model still has peft adapters; merge them before saving: "
                "Encoder(model.merge_and_unload(), tokenizer, ...)."
            )
        from llm2vec_lite import __version__
        from llm2vec_lite.patches import is_bidirectional, mark_bidirectional

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = self.model.config
        # The saved config.json must say what this encoder is, in the flag the family's plain
        # reload reads (is_causal, or Gemma 3's use_bidirectional_attention), so AutoModel and
        # sentence-transformers attend the same way. A patched model already says so.
        if is_bidirectional(config) != self.bidirectional:
            marked = copy.deepcopy(config)
            mark_bidirectional(marked, self.bidirectional)
            self.model.config = marked
        try:
            self.model.save_pretrained(folder)
        finally:
            self.model.config = config
        _tokenizer_for_export(self.tokenizer, self.pooling).save_pretrained(folder)

        settings = {
            "format": _SETTINGS_FORMAT,
            "pooling": self.pooling,
            "max_length": self.max_length,
            "query_instruction": self.query_instruction,
            "document_instruction": self.document_instruction,
            "bidirectional": self.bidirectional,
            "window": self.window,
            "library_version": __version__,
        }
        if self.projection is not None:
            self.projection.save(folder)
        else:
            shutil.rmtree(folder / PROJECTION_DIR, ignore_errors=True)  # a stale one would apply in ST
        _write_json(folder / SETTINGS_FILE, settings)
        _write_sentence_transformers_files(folder, self)
        (folder / "README.md").write_text(
            model_card if model_card is not None else _default_model_card(self), encoding="utf-8"
        )
        return folder

    def __repr__(self) -> str:
        name = getattr(getattr(self.model, "config", None), "_name_or_path", "") or type(self.model).__name__
        return (
            f"Encoder({name!r}, dim={self.dim}, pooling={self.pooling!r}, max_length={self.max_length}, "
            f"bidirectional={self.bidirectional}, window={self.window!r})"
        )


# ---------------------------------------------------------------------- helpers
def _check_compiler(device: str | torch.device) -> None:
    """Refuse ``compile`` where inductor cannot build kernels, before a model loads or runs."""
    from llm2vec_lite.runtime.block_compile import compiler_problem

    problem = compiler_problem(device)
    if problem is not None:
        raise UsageError(f"compile=True: {problem}; or encode without compile")


def _check_texts(texts: Iterable[Any]) -> list[str]:
    if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Iterable):
        raise TypeError(f"texts must be a string or a sequence of strings, got {type(texts).__name__}")
    items = list(texts)
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__} ({t!r:.40}), expected str")
    return items


def _progress(it, show: bool):
    if not show:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc="encode", unit="batch")


def _read_settings(folder: str) -> dict[str, Any]:
    """The folder's ``llm2vec_lite.json`` (``{}`` when absent), checked before the model loads.

    Raises:
        ModelError: If the file is not a JSON object or holds a value no encoder can have.
    """
    from llm2vec_lite.arguments import check_max_length, check_window
    from llm2vec_lite.errors import Llm2VecError, ModelError

    path = os.path.join(folder, SETTINGS_FILE)
    if not os.path.isfile(path):
        return {}
    hint = "re-save the encoder with Encoder.save_pretrained, or fix the file by hand"
    try:
        with open(path, encoding="utf-8") as f:
            settings = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: not valid JSON ({e}); {hint}") from None
    if not isinstance(settings, dict):
        raise ModelError(f"{path}: expected a JSON object of settings, got {type(settings).__name__}; {hint}")
    try:
        if "pooling" in settings:
            check_pooling(settings["pooling"])
        check_max_length(settings.get("max_length"))
        check_window(settings.get("window", "full"))
    except Llm2VecError as e:
        raise ModelError(f"{path}: {e}; {hint}") from None
    for key in ("query_instruction", "document_instruction"):
        if settings.get(key) is not None and not isinstance(settings[key], str):
            raise ModelError(f"{path}: {key} must be a string or null, got {settings[key]!r}; {hint}")
    return settings


def _single_gguf(folder: str) -> str:
    ggufs = sorted(p.name for p in Path(folder).glob("*.gguf"))
    if len(ggufs) == 1:
        return ggufs[0]
    present = sorted(p.name for p in Path(folder).iterdir())[:10]
    if ggufs:
        raise FileNotFoundError(
            f"{folder} has no config.json but several GGUF files ({', '.join(ggufs)}); "
            "pick one with gguf_file=... (CLI: --gguf-file)."
        )
    raise FileNotFoundError(
        f"{folder} is not a model folder: config.json is missing (found: {', '.join(present) or 'nothing'}). "
        "Expected a folder written by Encoder.save_pretrained, a Hugging Face model folder "
        "(config.json + weights + tokenizer) or a .gguf file."
    )


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _tokenizer_for_export(tokenizer, pooling: str):
    """The tokenizer to save: for last-token pooling, one that appends the EOS itself.

    The encoder appends the EOS at run time, but sentence-transformers calls the tokenizer as it
    is; baking the EOS into the saved tokenizer's post-processor makes both see the same ids (and
    the encoder then notices the tokenizer appends it and adds nothing).
    """
    from llm2vec_lite.tokenization import tokenizer_appends_eos

    if not needs_eos(pooling) or tokenizer.eos_token_id is None or tokenizer_appends_eos(tokenizer):
        return tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        logger.warning("Tokenizer has no fast backend; sentence-transformers will not see the EOS for last_token.")
        return tokenizer
    from tokenizers import processors

    exported = copy.deepcopy(tokenizer)
    eos, eos_id = tokenizer.eos_token, int(tokenizer.eos_token_id)
    append = processors.TemplateProcessing(
        single=f"$A:0 {eos}:0", pair=f"$A:0 $B:1 {eos}:1", special_tokens=[(eos, eos_id)]
    )
    current = exported.backend_tokenizer.post_processor
    exported.backend_tokenizer.post_processor = (
        append if current is None else processors.Sequence([current, append])
    )
    if not tokenizer_appends_eos(exported):
        logger.warning("Could not make the saved tokenizer append the EOS; sentence-transformers may differ.")
        return tokenizer
    return exported


def _write_sentence_transformers_files(folder: Path, encoder: Encoder) -> None:
    """modules.json and each module's config: Transformer (this folder) -> Pooling [-> Dense] -> Normalize."""
    from llm2vec_lite import __version__

    modules = [
        {"path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
        {"path": "1_Pooling", "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling"},
    ]
    if encoder.projection is not None:  # the fitted map, in ST's Dense layout (identity activation)
        modules.append({"path": PROJECTION_DIR, "type": "sentence_transformers.base.modules.dense.Dense"})
    modules.append({"path": "2_Normalize", "type": "sentence_transformers.base.modules.normalize.Normalize"})
    for i, module in enumerate(modules):
        module.update({"idx": i, "name": str(i)})
    _write_json(folder / "modules.json", modules)
    _write_json(
        folder / "sentence_bert_config.json",
        {
            "transformer_task": "feature-extraction",
            "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
            "module_output_name": "token_embeddings",
            "max_seq_length": encoder.max_length,
        },
    )
    (folder / "1_Pooling").mkdir(exist_ok=True)
    _write_json(
        folder / "1_Pooling" / "config.json",
        {
            "embedding_dimension": encoder.hidden_size,
            "pooling_mode": _ST_POOLING[encoder.pooling],
            # the instruction (ST "prompt") is attended to but not pooled, as in Encoder.encode
            "include_prompt": False,
        },
    )
    (folder / "2_Normalize").mkdir(exist_ok=True)
    _write_json(folder / "2_Normalize" / "config.json", {})
    _write_json(
        folder / "config_sentence_transformers.json",
        {
            "__version__": {"llm2vec_lite": __version__, "pytorch": torch.__version__},
            "model_type": "SentenceTransformer",
            "prompts": {
                "query": encoder.query_instruction or "",
                "document": encoder.document_instruction or "",
            },
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )


def _default_model_card(encoder: Encoder) -> str:
    from llm2vec_lite import __version__

    base = getattr(encoder.model.config, "_name_or_path", "") or "unknown"
    attention = "bidirectional" if encoder.bidirectional else "causal (baseline)"
    lines = [
        "---",
        "library_name: sentence-transformers",
        "tags: [llm2vec, llm2vec-lite, sentence-transformers, feature-extraction, sentence-similarity]",
        "---",
        "",
        f"# Text encoder from `{base}`",
        "",
        f"Converted with llm2vec-lite {__version__} (LLM2Vec, arXiv:2404.05961).",
        "",
        "| setting | value |",
        "|---|---|",
        f"| attention | {attention} |",
        f"| pooling | {encoder.pooling} |",
        f"| dimension | {encoder.dim} |",
        f"| max_length | {encoder.max_length} |",
        f"| query instruction | {json.dumps(encoder.query_instruction)} |",
        f"| document instruction | {json.dumps(encoder.document_instruction)} |",
        "",
        "```python",
        "from llm2vec_lite import Encoder",
        'enc = Encoder.from_pretrained("path/to/this/folder")',
        'vectors = enc.encode(["a sentence"])',
        "",
        "from sentence_transformers import SentenceTransformer",
        'st = SentenceTransformer("path/to/this/folder")',
        'vectors = st.encode(["a sentence"])',
        "```",
        "",
    ]
    return "\n".join(lines)


__all__ = ["Encoder", "POOLING_MODES", "SETTINGS_FILE", "cpu_has_fast_bf16"]
