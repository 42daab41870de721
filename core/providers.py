"""Provider factories: the settings pick the embedder and the answerers; callers open each once."""

from __future__ import annotations

from collections.abc import Mapping

from core.answering import Answerer
from core.embeddings import OnnxMiniLMEmbedder
from core.extractive import ExtractiveAnswerer
from core.settings import Settings


class UnknownModelError(ValueError):
    """A request named an answering model this deployment does not offer."""


class AnswererRegistry:
    """The answerers this process opened, by model name, and the one used when a request names none."""

    def __init__(self, answerers: Mapping[str, Answerer], default: str) -> None:
        self._answerers = dict(answerers)
        self.default = default

    @property
    def names(self) -> list[str]:
        """Model names a request may choose."""
        return sorted(self._answerers)

    def get(self, name: str | None) -> Answerer:
        """The answerer for `name` (None: the default); an unknown name is a clear error."""
        key = name or self.default
        if key not in self._answerers:
            raise UnknownModelError(f"unknown model {key!r}; available: {', '.join(self.names)}")
        return self._answerers[key]


def make_embedder(settings: Settings) -> OnnxMiniLMEmbedder:
    """The offline ONNX embedder (the only embedding provider so far)."""
    return OnnxMiniLMEmbedder(
        threads=settings.onnx_threads,
        batch_size=settings.embedding_batch_size,
        max_tokens=settings.embedding_max_tokens,
    )


def make_answerers(settings: Settings) -> AnswererRegistry:
    """The answerers for `DOCENT_LLM_PROVIDER`; `extractive` needs no model and is always available."""
    extractive = ExtractiveAnswerer(max_sentences=settings.answer_sentences, min_score=settings.min_score)
    return AnswererRegistry({extractive.model: extractive}, default=extractive.model)
