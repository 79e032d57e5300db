"""What the service knows of a Whisper-family checkpoint: its special token ids (from
generation_config.json, as transformers' Whisper `generate` reads them), its feature
extractor, and how a request becomes a decoder prompt plus decoding rules."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.models.whisper_decoding import LANGUAGE, TimestampRules, WhisperDecoding
from service.errors import InvalidArgument

SPEECH_ARCHITECTURES = ("WhisperForConditionalGeneration",)
TASKS = ("transcribe", "translate")


def is_speech_architecture(architecture: str) -> bool:
    return architecture in SPEECH_ARCHITECTURES


@dataclass(frozen=True)
class DecoderPrompt:
    """The tokens a window's engine request starts from, and its rules."""

    token_ids: list[int]
    decoding: WhisperDecoding

    @property
    def num_forced(self) -> int:
        return len(self.decoding.forced)


@dataclass(frozen=True)
class SpeechModel:
    feature_extractor: Any  # transformers.WhisperFeatureExtractor
    start_of_transcript: int
    end_of_text: int
    no_timestamps: int
    previous_text: int | None  # <|startofprev|>
    task_ids: dict[str, int]
    language_ids: dict[str, int]  # ISO code ("en") -> token id
    suppress_tokens: tuple[int, ...]
    begin_suppress_tokens: tuple[int, ...]
    max_initial_timestamp_index: int | None
    max_target_positions: int

    @classmethod
    def load(cls, model_dir: str | Path, max_target_positions: int) -> SpeechModel:
        from transformers import WhisperFeatureExtractor

        _require_audio_extra()
        path = Path(model_dir)
        gen = json.loads((path / "generation_config.json").read_text())
        eos = gen["eos_token_id"]
        return cls(
            feature_extractor=WhisperFeatureExtractor.from_pretrained(str(path)),
            start_of_transcript=gen["decoder_start_token_id"],
            end_of_text=eos[0] if isinstance(eos, list) else eos,
            no_timestamps=gen["no_timestamps_token_id"],
            previous_text=gen.get("prev_sot_token_id"),
            task_ids=dict(gen.get("task_to_id") or {}),
            language_ids={k.strip("<|>"): v for k, v in (gen.get("lang_to_id") or {}).items()},
            suppress_tokens=tuple(gen.get("suppress_tokens") or ()),
            begin_suppress_tokens=tuple(gen.get("begin_suppress_tokens") or ()),
            max_initial_timestamp_index=gen.get("max_initial_timestamp_index"),
            max_target_positions=max_target_positions,
        )

    # -- facts ---------------------------------------------------------------------------
    @property
    def timestamp_begin(self) -> int:
        return self.no_timestamps + 1

    @property
    def multilingual(self) -> bool:
        return bool(self.language_ids)

    @property
    def can_translate(self) -> bool:
        return self.multilingual and "translate" in self.task_ids

    def language_of(self, token_id: int) -> str:
        for code, value in self.language_ids.items():
            if value == token_id:
                return code
        return ""

    def is_text(self, token_id: int) -> bool:
        return token_id < self.end_of_text

    # -- requests ------------------------------------------------------------------------
    def check_language(self, language: str) -> str:
        """An ISO-639-1 code (or an English language name) -> the code; "" = detect."""
        if not language:
            return ""
        if not self.multilingual:
            raise InvalidArgument(
                "This model is English-only: `language` must be empty.", "language"
            )
        code = language.strip().lower()
        if code not in self.language_ids:
            from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

            code = TO_LANGUAGE_CODE.get(code, code)
        if code not in self.language_ids:
            raise InvalidArgument(
                f"Unsupported language {language!r}: use an ISO-639-1 code this model knows "
                f"(e.g. {', '.join(list(self.language_ids)[:6])}).",
                "language",
            )
        return code

    def check_task(self, task: str, to_language: str) -> None:
        if task == "translate":
            if not self.can_translate:
                raise InvalidArgument("This model cannot translate.", "model")
            if to_language not in ("", "en"):
                raise InvalidArgument(
                    f"Whisper translates into English only, got to_language={to_language!r}.",
                    "to_language",
                )

    def prompt_ids(self, text: str, tokenizer) -> list[int]:
        """Previous-text conditioning, as transformers' `get_prompt_ids`: <|startofprev|>
        then " " + the text, keeping the last max_target_positions // 2 - 1 tokens."""
        if not text.strip() or self.previous_text is None:
            return []
        ids = tokenizer.encode(" " + text.strip(), add_special_tokens=False)
        return [self.previous_text] + ids[-(self.max_target_positions // 2 - 1) :]

    def decoder_prompt(
        self, task: str, language: str, timestamps: bool, previous: list[int]
    ) -> DecoderPrompt:
        """[previous text] <|startoftranscript|> <|lang|> <|task|> [<|notimestamps|>]. An
        empty language is detected in the request's first step (the rest is then forced).
        An English-only model gets neither language nor task."""
        prompt = [*previous, self.start_of_transcript]
        rest: list[int] = []
        if self.multilingual:
            rest += [self.language_ids[language] if language else LANGUAGE, self.task_ids[task]]
        if not timestamps:
            rest.append(self.no_timestamps)
        if LANGUAGE in rest:  # detected in the request's first step: the rest is forced
            return DecoderPrompt(prompt, self.decoding(len(prompt), rest, timestamps))
        prompt += rest
        return DecoderPrompt(prompt, self.decoding(len(prompt), [], timestamps))

    def decoding(self, prompt_len: int, forced: list[int], timestamps: bool) -> WhisperDecoding:
        rules = None
        if timestamps:
            rules = TimestampRules(
                timestamp_begin=self.timestamp_begin,
                no_timestamps_token_id=self.no_timestamps,
                eos_token_id=self.end_of_text,
                max_initial_timestamp_index=self.max_initial_timestamp_index,
            )
        return WhisperDecoding(
            prompt_len=prompt_len,
            forced=tuple(forced),
            language_ids=tuple(self.language_ids.values()),
            suppress_tokens=self.suppress_tokens,
            begin_suppress_tokens=self.begin_suppress_tokens,
            timestamps=rules,
        )

    def detection_prompt(self) -> DecoderPrompt:
        """A one-step request detecting the language from <|startoftranscript|> alone (used
        when a previous-text prompt would otherwise condition the detection)."""
        return DecoderPrompt(
            [self.start_of_transcript], self.decoding(1, [LANGUAGE], timestamps=False)
        )


def _require_audio_extra() -> None:
    """Decoding uploads needs PyAV and soxr: say so at start-up, not per request."""
    import importlib.util

    missing = [m for m in ("av", "soxr") if importlib.util.find_spec(m) is None]
    if missing:
        raise RuntimeError(
            f"serving a speech model needs {', '.join(missing)}: pip install 'protoserve[audio]'"
        )
