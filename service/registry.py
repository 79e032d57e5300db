"""The models this server serves, by every name they answer to."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine import AsyncEngine
from service.chat import ChatRenderSettings
from service.config import ChatOptions
from service.errors import ResourceExhausted, Unavailable, Unimplemented, model_not_found
from service.generation_config import SamplingDefaults
from service.request_meter import RequestMeter
from service.tokenizer import Tokenizer

if TYPE_CHECKING:
    from service.audio.speech_model import SpeechModel
    from service.pooling import PoolingSupport


class Capability(enum.Enum):
    """RPC families a model can serve (mirrors protoserve.models.v1.Capability)."""

    GENERATE = "generate"
    CHAT = "chat"
    TOKENIZE = "tokenize"
    EMBED = "embed"
    CLASSIFY = "classify"
    POOL = "pool"
    SCORE = "score"
    GENERATIVE_SCORE = "generative_score"
    TRANSCRIBE = "transcribe"
    TRANSLATE = "translate"


@dataclass(frozen=True)
class ServedModel:
    names: tuple[str, ...]
    root: str
    created: int
    architecture: str
    dtype: str
    engine: AsyncEngine
    tokenizer: Tokenizer
    chat: ChatRenderSettings
    max_model_len: int
    vocab_size: int
    eos_token_ids: frozenset[int]
    # Server-side sampling defaults (generation_config.json unless --generation-config vllm).
    defaults: SamplingDefaults = SamplingDefaults()
    # Most logprobs a request may ask for (--max-logprobs; -1 = the whole vocabulary).
    max_logprobs: int = 20
    # Set when a pooling engine serves the model (embeddings, classification, scores).
    pooling: PoolingSupport | None = None
    # Set for speech-to-text models (Whisper): transcription, translation.
    speech: SpeechModel | None = None
    # How chat outputs are read: tool-call and reasoning parsers, the response role.
    chat_options: ChatOptions = ChatOptions()
    # --max-queued-requests: admit() refuses new requests while this many wait.
    max_queued_requests: int | None = None
    # Per-request log lines and metrics (the server binds it to its metrics).
    meter: RequestMeter = RequestMeter()

    @property
    def name(self) -> str:
        """The name responses carry: the first served name."""
        return self.names[0]

    @property
    def capabilities(self) -> frozenset[Capability]:
        if self.pooling is not None:
            return self.pooling.capabilities
        if self.speech is not None:
            speech = {Capability.TRANSCRIBE, Capability.TOKENIZE}
            if self.speech.can_translate:
                speech.add(Capability.TRANSLATE)
            return frozenset(speech)
        found = {Capability.GENERATE, Capability.TOKENIZE, Capability.GENERATIVE_SCORE}
        if self.chat.default_template:
            found.add(Capability.CHAT)
        return frozenset(found)

    def require(self, capability: Capability, api: str) -> None:
        """UNIMPLEMENTED "The model does not support <api> API" (REST 501) without it."""
        if capability not in self.capabilities:
            raise Unimplemented(f"The model does not support {api} API")

    def admit(self) -> None:
        """RESOURCE_EXHAUSTED (REST 503 + Retry-After) while the engine's waiting queue is
        full. Checked once per request, before its engine requests are added: a request
        admitted adds all of them (n choices, a batch of inputs)."""
        limit = self.max_queued_requests
        if limit is not None and self.engine.num_queued >= limit:
            raise ResourceExhausted(
                f"The server is overloaded: {limit} requests are waiting for `{self.name}` "
                "(--max-queued-requests). Retry later."
            )


class ModelRegistry:
    def __init__(self) -> None:
        self._models: list[ServedModel] = []
        self._by_name: dict[str, ServedModel] = {}
        self._ready = False

    def mark_ready(self) -> None:
        """Every configured model is loaded: start answering."""
        self._ready = True

    def add(self, model: ServedModel) -> None:
        clash = [n for n in model.names if n in self._by_name]
        if clash:
            raise ValueError(f"served model name {clash[0]!r} is used twice")
        self._models.append(model)
        self._by_name.update({n: model for n in model.names})

    def get(self, name: str) -> ServedModel:
        """The model served as `name`; empty name: the first model."""
        self._check_ready()
        if not name:
            return self._models[0]
        model = self._by_name.get(name)
        if model is None:
            raise model_not_found(name, list(self._by_name))
        return model

    def all(self) -> list[ServedModel]:
        self._check_ready()
        return list(self._models)

    def loaded(self) -> list[ServedModel]:
        """The models loaded so far (for shutdown), ready or not."""
        return list(self._models)

    def _check_ready(self) -> None:
        if not self._ready:
            raise Unavailable("The server is still loading its models.")
