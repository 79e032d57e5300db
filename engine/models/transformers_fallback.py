"""The transformers fallback: any causal LM transformers implements, served batched and
paged like the native models (the approach of vLLM's Transformers backend).

The transformers model is loaded from the local directory with our attention function
(transformers_attention.ATTN_IMPLEMENTATION); the flattened batch runs through its base
model as one row, input_ids [1, T] with position_ids [1, T] = our positions and no
transformers cache, so RoPE and position embeddings see each token's own position while
attention reads and writes our paged KV cache. transformers builds no mask for a custom
attention function; the backend applies causality per sequence from AttentionMetadata.

At load time one probe forward checks that every layer's attention goes through that
function in a form the backends compute, and that the logits head is reproduced;
otherwise loading fails with UnsupportedModel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.attention.base import AttentionBackend, AttentionMetadata, KVCache
from engine.errors import UnsupportedModel
from engine.models.transformers_attention import (
    ATTN_IMPLEMENTATION,
    STEP_KWARG,
    AttentionProbe,
    AttentionStep,
    PagedStep,
    register_attention,
)

_PROBE_TOKENS = 5
_LAYER_TYPES = ("full_attention", "sliding_attention")  # the kinds the backends compute


class TransformersForCausalLM(nn.Module):
    def __init__(self, hf_model: nn.Module, backend: AttentionBackend) -> None:
        super().__init__()
        self.hf = hf_model
        self.decoder = hf_model.base_model
        self.lm_head = hf_model.get_output_embeddings()
        if self.decoder is hf_model or self.lm_head is None:
            raise UnsupportedModel(
                f"{type(hf_model).__name__}: the fallback needs a base model returning hidden "
                "states and an `lm_head` (get_output_embeddings)"
            )
        self.backend = backend
        config = hf_model.config
        _check_attention_kinds(config)
        self.architecture = type(hf_model).__name__
        self.max_position_embeddings = int(getattr(config, "max_position_embeddings", 0) or 2048)
        # What the model's own forward does to lm_head's output (Cohere, Granite, Gemma 2/3):
        self.logit_scale = (getattr(config, "logit_scale", None) or 1.0) / (
            getattr(config, "logits_scaling", None) or 1.0
        )
        self.softcap: float | None = getattr(config, "final_logit_softcapping", None)
        self.num_layers = int(config.num_hidden_layers)
        self.num_kv_heads, self.head_dim, self.vocab_size = self._probe()

    @classmethod
    def load(
        cls, model_dir: Path, backend: AttentionBackend, dtype: torch.dtype, device: torch.device
    ) -> TransformersForCausalLM:
        """Load the checkpoint in `model_dir` (local files only) with transformers."""
        register_attention()
        config = _hf_config(model_dir)
        hf_class = _causal_lm_class(config)
        hf_model, info = hf_class.from_pretrained(
            model_dir,
            config=config,
            dtype=dtype,
            device_map=str(device),
            attn_implementation=ATTN_IMPLEMENTATION,
            local_files_only=True,
            output_loading_info=True,
        )
        bad = sorted(info["missing_keys"]) + sorted(k[0] for k in info["mismatched_keys"])
        if bad:
            raise ValueError(
                f"{model_dir}: weights missing from the checkpoint or of the wrong shape: {bad[:8]}"
            )
        return cls(hf_model.eval().requires_grad_(False), backend)

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        metadata: AttentionMetadata,
        kv_caches: list[KVCache],
    ) -> torch.Tensor:
        """input_ids, positions [T] -> hidden states [T, hidden] (final norm applied)."""
        return self._hidden(input_ids, positions, PagedStep(self.backend, metadata, kv_caches))

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [N, hidden] -> logits [N, vocab]."""
        logits = self.lm_head(hidden)
        if self.logit_scale != 1.0:
            logits = logits * self.logit_scale
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def _hidden(
        self, input_ids: torch.Tensor, positions: torch.Tensor, step: AttentionStep
    ) -> torch.Tensor:
        kwargs: dict[str, Any] = {STEP_KWARG: step}
        out = self.decoder(
            input_ids=input_ids[None], position_ids=positions[None], use_cache=False, **kwargs
        )
        return out.last_hidden_state[0]

    @torch.inference_mode()
    def _probe(self) -> tuple[int, int, int]:
        """(num_kv_heads, head_dim, vocab_size) from a test forward, or UnsupportedModel."""
        try:
            return self._run_probe()
        except UnsupportedModel as e:
            raise UnsupportedModel(f"{self.architecture}: {e}") from e
        except torch.OutOfMemoryError:
            raise
        except Exception as e:  # any failure of a model we do not know: say which and why
            raise UnsupportedModel(
                f"{self.architecture}: a test forward through the paged attention failed: {e!r}"
            ) from e

    def _run_probe(self) -> tuple[int, int, int]:
        """One short sequence through the base model + our head, and through the whole
        transformers model (both with dense attention that records each call)."""
        device = next(self.hf.parameters()).device
        positions = torch.arange(_PROBE_TOKENS, device=device)
        input_ids = positions % self.hf.config.vocab_size
        probe = AttentionProbe()
        ours = self.compute_logits(self._hidden(input_ids, positions, probe)).float()
        num_kv_heads, head_dim = probe.layout(self.num_layers)
        kwargs: dict[str, Any] = {STEP_KWARG: AttentionProbe()}
        full = self.hf(
            input_ids=input_ids[None], position_ids=positions[None], use_cache=False, **kwargs
        )
        expected = full.logits[0].float()
        tolerance = 1e-3 * (1.0 + float(expected.abs().max()))
        if ours.shape != expected.shape or not torch.allclose(
            ours, expected, rtol=1e-2, atol=tolerance
        ):
            raise UnsupportedModel(
                "its forward changes the logits in a way the fallback does not reproduce"
            )
        return num_kv_heads, head_dim, expected.shape[-1]


def _check_attention_kinds(config: Any) -> None:
    """Attention the backends cannot compute that transformers expresses only through
    the mask (which it builds for its own attention functions, not for ours)."""
    if getattr(config, "attention_chunk_size", None):
        raise UnsupportedModel("chunked attention (attention_chunk_size) is not supported")
    kinds = set(getattr(config, "layer_types", None) or ()) - set(_LAYER_TYPES)
    if kinds:
        raise UnsupportedModel(f"layer types {sorted(kinds)} are not supported")


def _hf_config(model_dir: Path) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model_dir, local_files_only=True)
    except (KeyError, ValueError) as e:
        raise UnsupportedModel(f"transformers cannot read {model_dir}/config.json: {e}") from e


def _causal_lm_class(config: Any) -> Any:
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, __version__

    architecture = (config.architectures or ["?"])[0]
    try:
        hf_class = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    except KeyError:
        raise UnsupportedModel(
            f"{architecture}: transformers {__version__} has no causal LM for model_type "
            f"{config.model_type!r}"
        ) from None
    if hf_class.__name__ != architecture:
        raise UnsupportedModel(
            f"config.json names architecture {architecture!r}, but transformers serves its "
            f"model_type {config.model_type!r} with {hf_class.__name__}"
        )
    if not hf_class.is_backend_compatible():
        raise UnsupportedModel(
            f"{hf_class.__name__} cannot use a custom attention function in transformers "
            f"{__version__} (its attention does not go through the AttentionInterface with "
            "the model's keyword arguments)"
        )
    return hf_class
