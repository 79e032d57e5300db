"""The transformers fallback for pooling models: any encoder or decoder transformers
implements, run on our padded batches (engine.pooling.batch) with its own attention.

- Embedding models: `AutoModel` (a causal-LM checkpoint loads as its base model, the
  decoder-as-embedder case); token states come back for our poolers.
- Sequence classifiers: `AutoModelForSequenceClassification`. A decoder's head (`score`)
  is applied here to the last real token of each row (right padding: transformers would
  look for the pad id instead); an encoder's forward is used whole, with its own head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.errors import UnsupportedModel
from engine.pooling.batch import EncoderOutput, PaddedBatch

_ATTENTION = "sdpa"


class TransformersPoolingModel(nn.Module):
    def __init__(self, hf_model: nn.Module, classify: bool, is_causal: bool) -> None:
        super().__init__()
        self.hf = hf_model
        config = hf_model.config
        self.classify = classify
        self.is_causal = is_causal
        self.hidden_size = int(config.get_text_config().hidden_size)
        self.vocab_size = int(config.get_text_config().vocab_size)
        self.num_labels = int(config.num_labels) if classify else 0
        self.pad_token_id = int(getattr(config, "pad_token_id", None) or 0)
        self.max_positions = int(getattr(config, "max_position_embeddings", 0) or 0) or None
        self.uses_token_types = int(getattr(config, "type_vocab_size", 0) or 0) > 1
        head = getattr(hf_model, "score", None)
        self._decoder_head = (
            head if classify and is_causal and isinstance(head, nn.Linear) else None
        )

    @classmethod
    def load(
        cls, model_dir: Path, dtype: torch.dtype, device: torch.device, classify: bool
    ) -> TransformersPoolingModel:
        import transformers

        config = transformers.AutoConfig.from_pretrained(model_dir, local_files_only=True)
        is_causal = is_decoder_config(config)
        auto = (
            transformers.AutoModelForSequenceClassification if classify else transformers.AutoModel
        )
        try:
            hf_model, info = auto.from_pretrained(
                model_dir,
                config=config,
                dtype=dtype,
                device_map=str(device),
                attn_implementation=_ATTENTION,
                local_files_only=True,
                output_loading_info=True,
            )
        except (ValueError, KeyError) as e:
            raise UnsupportedModel(f"transformers cannot load {model_dir} for pooling: {e}") from e
        if info["missing_keys"]:
            raise ValueError(f"{model_dir}: weights missing: {sorted(info['missing_keys'])[:8]}")
        return cls(hf_model.eval().requires_grad_(False), classify, is_causal)

    def forward(self, batch: PaddedBatch) -> EncoderOutput:
        kwargs: dict[str, Any] = {
            "input_ids": batch.input_ids,
            "attention_mask": batch.attention_mask.long(),
        }
        if batch.token_type_ids is not None and self.uses_token_types:
            kwargs["token_type_ids"] = batch.token_type_ids
        if self._decoder_head is not None:
            hidden = self.hf.base_model(**kwargs, use_cache=False).last_hidden_state
            last = hidden[torch.arange(len(hidden), device=hidden.device), batch.lengths - 1]
            return EncoderOutput(hidden, self._decoder_head(last))
        if self.classify:
            out = self.hf(**kwargs, output_hidden_states=True)
            return EncoderOutput(out.hidden_states[-1], out.logits)
        if self.is_causal:
            kwargs["use_cache"] = False
        return EncoderOutput(self.hf(**kwargs).last_hidden_state)


def is_decoder_config(config: Any) -> bool:
    """A causal model (decoder) rather than a bidirectional encoder: transformers has a
    causal LM and no masked LM for its model_type."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    model_type = config.model_type
    return (
        model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )
