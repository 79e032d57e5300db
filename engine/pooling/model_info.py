"""Which runner serves a checkpoint, and the pooling facts of a pooling model: its tasks,
default pooling and normalisation (sentence-transformers configs honoured, then
--pooler-config overrides), labels, Matryoshka dimensions, input-type prompts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from engine.errors import InvalidParameter, UnsupportedModel
from engine.pooling.params import CLASSIFY, EMBED, TOKEN_EMBED, PoolingParams
from engine.pooling.sentence_transformers import SentenceTransformersConfig

RUNNERS = ("auto", "generate", "pooling")
POOLING_TYPES = ("CLS", "MEAN", "LAST", "ALL", "STEP", "MAX", "MEAN_SQRT_LEN")
_GENERATE_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")
_UNSUPPORTED_SUFFIXES = ("ForTokenClassification", "ForQuestionAnswering", "ForMultipleChoice")


def resolve_runner(architecture: str, runner: str = "auto") -> str:
    """ "generate" or "pooling" for this architecture. auto: causal LMs (and other
    generators) generate; sequence classifiers, encoders and base models pool."""
    if runner not in RUNNERS:
        raise ValueError(f"runner must be one of {RUNNERS}, got {runner!r}")
    if runner != "auto":
        return runner
    return "generate" if architecture.endswith(_GENERATE_SUFFIXES) else "pooling"


def is_classifier(architecture: str) -> bool:
    return architecture.endswith("ForSequenceClassification")


@dataclass(frozen=True)
class PoolerConfig:
    """--pooler-config: overrides of what the checkpoint says (every field optional)."""

    pooling_type: str | None = None  # one of POOLING_TYPES
    normalize: bool | None = None  # embeddings' default use_activation
    step_tag_id: int | None = None  # STEP: pool only the positions holding this token
    returned_token_ids: tuple[int, ...] | None = None  # STEP: keep only these columns

    def __post_init__(self) -> None:
        if self.pooling_type is not None and self.pooling_type not in POOLING_TYPES:
            raise ValueError(
                f"pooling_type must be one of {POOLING_TYPES}, got {self.pooling_type!r}"
            )

    @classmethod
    def from_json(cls, text: str | None) -> PoolerConfig:
        data = json.loads(text) if text else {}
        if not isinstance(data, dict):
            raise ValueError("--pooler-config must be a JSON object")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"--pooler-config: unknown keys {unknown}")
        if data.get("pooling_type"):
            data["pooling_type"] = str(data["pooling_type"]).upper()
        if data.get("returned_token_ids") is not None:
            data["returned_token_ids"] = tuple(int(t) for t in data["returned_token_ids"])
        return cls(**data)


@dataclass(frozen=True)
class PoolingModelInfo:
    architecture: str
    tasks: frozenset[str]  # of params.POOLING_TASKS
    hidden_size: int
    max_model_len: int
    is_causal: bool  # a decoder served as a pooling model (attention is causal)
    pooling_type: str  # how `embed` pools token states (POOLING_TYPES)
    normalize: bool  # embeddings' default use_activation
    num_labels: int = 0  # sequence-classification outputs (0: no classifier head)
    labels: tuple[str, ...] = ()  # id2label by index; empty when the config names none
    multi_label: bool = False  # classify with sigmoid per label instead of softmax
    matryoshka_dimensions: tuple[int, ...] | None = None  # None: not a Matryoshka model
    any_dimensions: bool = False  # Matryoshka model that allows any size up to hidden_size
    type_vocab_size: int = 0  # segment ids the model embeds (BERT: 2)
    step_tag_id: int | None = None
    returned_token_ids: tuple[int, ...] | None = None
    prompts: dict[str, str] = field(default_factory=dict)  # input type -> prompt prefix

    @property
    def is_cross_encoder(self) -> bool:
        """A classifier with one output: scores a (query, document) pair."""
        return CLASSIFY in self.tasks and self.num_labels == 1

    @property
    def is_matryoshka(self) -> bool:
        return self.any_dimensions or self.matryoshka_dimensions is not None

    def check_params(self, params: PoolingParams, num_tokens: int) -> None:
        """InvalidParameter for a task this model does not serve or a bad `dimensions`."""
        params.validate()
        if params.task not in self.tasks:
            raise InvalidParameter(
                "task",
                f"Task '{params.task}' is not supported by this model; it supports "
                f"{sorted(self.tasks)}",
            )
        if params.dimensions is not None:
            self._check_dimensions(params.dimensions)
        types = params.token_type_ids
        if types is not None and (
            len(types) != num_tokens
            or any(not 0 <= t < max(self.type_vocab_size, 1) for t in types)
        ):
            raise InvalidParameter(
                "token_type_ids",
                f"token_type_ids must give one id in [0, {max(self.type_vocab_size, 1)}) per token",
            )

    def _check_dimensions(self, dimensions: int) -> None:
        if not self.is_matryoshka:
            raise InvalidParameter(
                "dimensions",
                f'Model "{self.architecture}" does not support Matryoshka embeddings '
                "(changing output dimensions would give poor results)",
            )
        if not 1 <= dimensions <= self.hidden_size:
            raise InvalidParameter(
                "dimensions",
                f"dimensions must be in [1, {self.hidden_size}] for this model, got {dimensions}",
            )
        allowed = self.matryoshka_dimensions
        if not self.any_dimensions and allowed is not None and dimensions not in allowed:
            raise InvalidParameter(
                "dimensions",
                f'Model "{self.architecture}" only supports {list(allowed)} for Matryoshka '
                f"dimensions, got {dimensions}",
            )


def pooling_model_info(
    architecture: str,
    config: dict[str, Any],
    st: SentenceTransformersConfig | None,
    overrides: PoolerConfig,
    *,
    hidden_size: int,
    num_labels: int,
    is_causal: bool,
    max_model_len: int,
) -> PoolingModelInfo:
    classifier = num_labels > 0
    if architecture.endswith(_UNSUPPORTED_SUFFIXES):
        raise UnsupportedModel(f"{architecture}: only embedding and sequence-classification "
                               "pooling models are served")  # fmt: skip
    pooling_type = (
        overrides.pooling_type or (st and st.pooling_type) or ("LAST" if is_causal else "CLS")
    )
    normalize = overrides.normalize
    if normalize is None:
        normalize = st.normalize if st is not None else True
    matryoshka = config.get("matryoshka_dimensions")
    return PoolingModelInfo(
        architecture=architecture,
        tasks=frozenset({CLASSIFY} if classifier else {EMBED, TOKEN_EMBED}),
        hidden_size=hidden_size,
        max_model_len=max_model_len,
        is_causal=is_causal,
        pooling_type=pooling_type,
        normalize=normalize,
        num_labels=num_labels,
        labels=_labels(config, num_labels),
        multi_label=config.get("problem_type") == "multi_label_classification",
        matryoshka_dimensions=tuple(int(d) for d in matryoshka) if matryoshka else None,
        any_dimensions=bool(config.get("is_matryoshka")) and not matryoshka,
        type_vocab_size=int(config.get("type_vocab_size") or 0),
        step_tag_id=overrides.step_tag_id,
        returned_token_ids=overrides.returned_token_ids,
        prompts=dict(st.prompts) if st is not None else {},
    )


def _labels(config: dict[str, Any], num_labels: int) -> tuple[str, ...]:
    id2label = config.get("id2label") or {}
    if not num_labels or len(id2label) != num_labels:
        return ()
    return tuple(str(id2label.get(str(i), id2label.get(i, ""))) for i in range(num_labels))
