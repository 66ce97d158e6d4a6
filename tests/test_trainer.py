"""The training loop's advice on its own settings."""

from llm2vec_lite.trainer import LoopSettings, checkpointing_advice


def test_checkpointing_with_compiled_blocks_on_a_cpu_gets_a_warning_naming_the_fix():
    both = LoopSettings(steps=1, learning_rate=1e-4, gradient_checkpointing=True, compile=True)
    advice = checkpointing_advice(both, "cpu", gradcache=False)
    assert advice is not None and "3x slower" in advice and "gradcache_chunk_size" in advice
    assert "gradcache_chunk_size" not in checkpointing_advice(both, "cpu", gradcache=True)
    assert checkpointing_advice(both, "cuda", gradcache=False) is None  # not measured slower on a GPU
    one = LoopSettings(steps=1, learning_rate=1e-4, gradient_checkpointing=True)
    assert checkpointing_advice(one, "cpu", gradcache=False) is None
    assert checkpointing_advice(LoopSettings(steps=1, learning_rate=1e-4, compile=True), "cpu", gradcache=False) is None
