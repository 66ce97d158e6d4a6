"""Moved to :mod:`llm2vec_lite.runtime.frozen_base`; this old name keeps working until the next release."""

from llm2vec_lite.runtime import _moved

_moved(__name__)
