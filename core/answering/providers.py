"""Provider factories: the settings pick the embedder and the answerers; callers open each once."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from langchain_core.language_models import BaseChatModel
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI

from core.answering.base import Answerer
from core.answering.chat import ChatAnswerer, PromptOptions, ResilientAnswerer
from core.answering.extractive import ExtractiveAnswerer, Scoring
from core.answering.llama_local import LlamaCppChat, load_llama, smollm2_path
from core.answering.pricing import DEFAULT_PRICES
from core.answering.resilience import RetryPolicy
from core.answering.support import SupportChecker
from core.retrieval.embedders import Embedder
from core.retrieval.rerank import LLMReranker
from core.settings import OPENAI_NO_KEY, ProviderConfigError, Settings

log = logging.getLogger(__name__)

DEFAULT_MODELS = {"openai": "gpt-4o-mini", "ollama": "llama3.2"}
LLM_PROVIDERS = ("openai", "ollama", "local", "extractive")
# OpenAI-compatible servers other than OpenAI's (llama.cpp, vLLM, LM Studio) usually want no key.
OPENAI_BASE_URL = "https://api.openai.com/v1"


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


def ollama_answers(base_url: str, timeout_s: float = 1.0) -> bool:
    """Whether an Ollama server answers at base_url (auto-detection, once at start-up)."""
    try:
        return httpx.get(f"{base_url.rstrip('/')}/api/version", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def choose_provider(settings: Settings) -> str:
    """DOCENT_LLM_PROVIDER, with `auto` resolved: openai with a key, a live ollama, a configured GGUF,
    else extractive. `auto` never picks the SmolLM2 demo model on its own.
    """
    if settings.llm_provider != "auto":
        return settings.llm_provider
    if settings.openai_api_key is not None:
        return "openai"
    if ollama_answers(settings.ollama_base_url):
        return "ollama"
    if settings.local_model_path is not None:
        return "local"
    return "extractive"


def make_answerers(settings: Settings, *, embedder: Embedder | None = None) -> AnswererRegistry:
    """The chosen provider and its fallbacks, each wrapped with retries and the chain after it; `extractive`
    needs no model, is always available and is the last resort of every chain. `embedder` (the process's,
    from the composition root) scores the extractive answer's sentences and checks LLM answers' citations;
    without it the extractive answerer ranks by term overlap alone and LLM answers go unchecked.
    """
    candidates = settings.extractive_dense_candidates
    extractive = ExtractiveAnswerer(
        max_sentences=settings.answer_sentences,
        min_score=settings.min_score,
        embedder=embedder if candidates else None,
        scoring=Scoring(candidates=candidates) if candidates else None,
    )
    checker = SupportChecker(embedder) if embedder is not None else None
    primary = choose_provider(settings)
    specs: list[tuple[str, str | None]] = [(primary, settings.llm_model)]
    for entry in settings.fallback_providers:
        name, _, fallback_model = entry.partition(":")
        if name not in LLM_PROVIDERS:
            raise ProviderConfigError(
                f"DOCENT_LLM_FALLBACKS: unknown provider {name!r}; use {', '.join(LLM_PROVIDERS)}"
            )
        specs.append((name, fallback_model or None))
    chain: list[ChatAnswerer] = []
    for provider, model in specs:
        if provider == "extractive":
            break  # the last resort anyway: whatever follows it would never be tried
        answerer = make_chat_answerer(settings, provider, model, checker=checker)
        if answerer.model not in {a.model for a in chain}:
            chain.append(answerer)
    policy = RetryPolicy(settings.llm_max_retries, settings.llm_backoff_s, settings.llm_backoff_max_s)
    answerers: dict[str, Answerer] = {extractive.model: extractive}
    for i, answerer in enumerate(chain):
        answerers[answerer.model] = ResilientAnswerer(chain[i:], last_resort=extractive, policy=policy)
    return AnswererRegistry(answerers, default=chain[0].model if chain else extractive.model)


def make_chat_answerer(
    settings: Settings, provider: str, model: str | None, *, checker: SupportChecker | None = None
) -> ChatAnswerer:
    """Open one chat model (clients and weights are loaded here, once) behind the Answerer seam; `checker`
    checks its answers' citations."""
    chat, name = make_chat_model(settings, provider, model)
    return ChatAnswerer(
        chat,
        provider=provider,
        model_name=name,
        timeout_s=settings.llm_timeout_s,
        prompt=PromptOptions(
            system_prompt=settings.system_prompt,
            history_turns=settings.prompt_history_turns,
            history_tokens=settings.prompt_history_tokens,
        ),
        prices={**DEFAULT_PRICES, **settings.llm_prices},
        min_score=settings.min_score,
        checker=checker,
    )


def make_reranker(settings: Settings) -> LLMReranker | None:
    """The second-stage reranker `DOCENT_RERANKER` asks for (`llm`: the chosen provider's model, opened
    once), or None (`none`, the default; also when no LLM provider is configured, with a warning)."""
    if settings.reranker == "none":
        return None
    provider = choose_provider(settings)
    if provider == "extractive":
        log.warning("DOCENT_RERANKER=llm but no LLM provider is configured: results are not reranked")
        return None
    chat, name = make_chat_model(settings, provider, settings.llm_model)
    return LLMReranker(chat, model_name=f"{provider}/{name}")


def make_chat_model(settings: Settings, provider: str, model: str | None) -> tuple[BaseChatModel, str]:
    """One chat model of a provider (clients and weights loaded here), and its model name."""
    chat: BaseChatModel
    if provider == "openai":
        name = model or DEFAULT_MODELS["openai"]
        chat = ChatOpenAI(
            model=name,
            base_url=settings.openai_base_url,
            api_key=settings.openai_key(),
            timeout=settings.llm_timeout_s,
            max_retries=0,  # ResilientAnswerer retries, with backoff, across the fallback chain
            streaming=True,
            stream_usage=True,
            temperature=settings.llm_temperature,
            max_completion_tokens=settings.llm_max_tokens,
        )
    elif provider == "ollama":
        name = model or DEFAULT_MODELS["ollama"]
        chat = ChatOllama(
            model=name,
            base_url=settings.ollama_base_url,
            temperature=settings.llm_temperature,
            num_predict=settings.llm_max_tokens,
            client_kwargs={"timeout": settings.llm_timeout_s},
        )
    elif provider == "local":
        path = settings.local_model_path or smollm2_path()
        name = model or path.stem.split(".")[0]
        llama = load_llama(path, threads=settings.llama_threads, context_tokens=settings.local_context_tokens)
        chat = LlamaCppChat(
            llama=llama, max_tokens=settings.llm_max_tokens, temperature=settings.llm_temperature
        )
    else:
        raise ProviderConfigError(f"unknown LLM provider {provider!r}; use {', '.join(LLM_PROVIDERS)}")
    return chat, name


@dataclass(frozen=True)
class ModelProbe:
    """A GET that answers 200 while a remote model server is up and accepts our key."""

    url: str
    headers: dict[str, str]


def provider_of(model: str) -> str:
    """The provider of an answering model named `provider/model` (`extractive` is its own provider)."""
    return model.partition("/")[0]


def model_probe(settings: Settings, provider: str) -> ModelProbe | None:
    """How to tell that a provider's server is reachable: `<openai base>/models` (with the key) for
    OpenAI-compatible servers, `/api/tags` for Ollama; None for in-process providers (local, extractive).
    """
    if provider == "openai":
        base = (settings.openai_base_url or OPENAI_BASE_URL).rstrip("/")
        key = settings.openai_key().get_secret_value() if settings.openai_api_key else OPENAI_NO_KEY
        return ModelProbe(f"{base}/models", {"Authorization": f"Bearer {key}"})
    if provider == "ollama":
        return ModelProbe(f"{settings.ollama_base_url.rstrip('/')}/api/tags", {})
    return None
