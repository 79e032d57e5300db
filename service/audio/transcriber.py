"""One transcription (or translation) of one audio clip on a speech model's engine.

The clip's log-mel features are cut into 30 s windows and decoded in sequence, as
transformers' Whisper `generate` does: each window is one engine request (its encoder
pass, then decoding batched with every other request); with timestamps (always for audio
longer than a window) the next window starts where the last complete segment ended. Files
run in parallel; the windows of one file run one after another.

`run()` yields text as it becomes final: token by token without timestamps, segment by
segment (at each window's end) with them; `transcript` holds the result afterwards. The
yielded pieces always concatenate to `transcript.text`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import structlog

from engine import SamplingParams
from engine.encoder_cache import EncoderInput
from service.audio.decode import SAMPLE_RATE
from service.audio.features import Features, log_mel
from service.audio.segments import Segment, compression_ratio, split_window
from service.audio.speech_model import DecoderPrompt, SpeechModel
from service.detokenizer import IncrementalDetokenizer
from service.registry import ServedModel
from service.torch_threads import run_in_own_thread

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class TranscriptionOptions:
    task: str = "transcribe"  # or "translate" (into English)
    language: str = ""  # ISO-639-1 code; "" = detected from the first window
    prompt: str = ""  # previous text, conditions the first window
    timestamps: bool = False  # segments with start / end (forced on for long audio)
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=0.0))
    max_new_tokens: int | None = None  # per window; None = as many as the context holds
    priority: int = 0


@dataclass
class AudioUsage:
    prompt_tokens: int = 0  # decoder prompts (with language / task tokens), every window
    completion_tokens: int = 0  # decoded tokens (timestamps and EOS included)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Transcript:
    text: str
    language: str
    duration: float  # seconds of audio
    segments: list[Segment]  # with timestamps only
    usage: AudioUsage
    token_ids: list[int]  # every kept token (segments' tokens, timestamps included)


@dataclass
class _Window:
    tokens: list[int] = field(default_factory=list)  # generated, forced ones included
    logprobs: list[float] = field(default_factory=list)  # of each generated token, if asked
    text: str = ""  # streamed text (no timestamps)


class Transcription:
    def __init__(
        self,
        request_id: str,
        model: ServedModel,
        audio: np.ndarray,
        options: TranscriptionOptions,
    ) -> None:
        assert model.speech is not None
        self.request_id = request_id
        self.model = model
        self.speech: SpeechModel = model.speech
        self.audio = audio
        self.options = options
        self.usage = AudioUsage()
        self.transcript: Transcript | None = None
        self._windows = 0

    @property
    def duration(self) -> float:
        return self.audio.shape[0] / SAMPLE_RATE

    async def run(self) -> AsyncIterator[str]:
        started = time.monotonic()
        outcome = "cancelled"
        try:
            features = await run_in_own_thread(log_mel, self.speech.feature_extractor, self.audio)
            async for text in self._transcribe(features):
                yield text
            outcome = "done"
        finally:
            log.info(
                "transcription finished", request_id=self.request_id, model=self.model.name,
                task=self.options.task, audio_seconds=round(self.duration, 2),
                windows=self._windows, prompt_tokens=self.usage.prompt_tokens,
                completion_tokens=self.usage.completion_tokens, outcome=outcome,
                seconds=round(time.monotonic() - started, 3),
            )  # fmt: skip

    async def _transcribe(self, features: Features) -> AsyncIterator[str]:
        options, speech = self.options, self.speech
        language = options.language
        previous = speech.prompt_ids(options.prompt, self.model.tokenizer)
        if previous and not language and speech.multilingual:
            language = await self._detect_language(features.window(0))
        timestamps = options.timestamps or features.num_frames > features.window_frames
        texts: list[str] = []
        segments: list[Segment] = []
        seek = 0
        while seek < features.num_frames:
            frames = min(features.num_frames - seek, features.window_frames)
            prompt = speech.decoder_prompt(
                options.task, language, timestamps, previous if seek == 0 else []
            )
            window = _Window()
            async for text in self._decode(features.window(seek), prompt, window, timestamps):
                texts.append(text)
                yield text
            forced, generated = (
                window.tokens[: prompt.num_forced],
                window.tokens[prompt.num_forced :],
            )
            if forced and not language:
                language = speech.language_of(forced[0])
            if generated and generated[-1] == speech.end_of_text:
                generated = generated[:-1]
            if not timestamps:  # one window: the whole decoding is the text
                segments.append(Segment(seek, 0.0, self.duration, generated, 0, window.text))
                break
            kept, advance = split_window(generated, seek, frames, speech.timestamp_begin)
            for segment in kept:
                self._describe(segment, window.logprobs[prompt.num_forced :])
                if segment.text:
                    texts.append(segment.text)
                    yield segment.text
            segments += kept
            seek += advance if advance > 0 else frames
        self.transcript = Transcript(
            text="".join(texts),
            language=language,
            duration=self.duration,
            segments=segments if timestamps else [],
            usage=self.usage,
            token_ids=[t for s in segments for t in s.token_ids],
        )

    async def _decode(
        self, window, prompt: DecoderPrompt, into: _Window, timestamps: bool
    ) -> AsyncIterator[str]:
        """One window as one engine request; yields its text as it comes when there are no
        timestamps (with them, segments are known only at the window's end)."""
        self._windows += 1
        params = self._params(prompt, timestamps)
        detokenizer = IncrementalDetokenizer(self.model.tokenizer, [], skip_special_tokens=True)
        outputs = self.model.engine.generate(
            f"{self.request_id}-{self._windows - 1}",
            prompt.token_ids,
            params,
            priority=self.options.priority,
            encoder_input=EncoderInput(window, prompt.decoding),
        )
        self.usage.prompt_tokens += len(prompt.token_ids) + prompt.num_forced
        try:
            async for output in outputs:
                free = output.new_token_ids[max(0, prompt.num_forced - len(into.tokens)) :]
                into.tokens += output.new_token_ids
                into.logprobs += [p.chosen.logprob for p in output.logprobs or ()]
                self.usage.completion_tokens += len(free)
                if timestamps:
                    continue
                text = detokenizer.add([t for t in free if self.speech.is_text(t)])
                if text:
                    into.text += text
                    yield text
        finally:
            await outputs.aclose()

    def _params(self, prompt: DecoderPrompt, timestamps: bool) -> SamplingParams:
        room = self.model.max_model_len - len(prompt.token_ids)
        wanted = self.options.max_new_tokens
        budget = room if wanted is None else min(room, wanted + prompt.num_forced)
        extra = {"logprobs": 0} if timestamps else {}  # avg_logprob of the segments
        return dataclasses.replace(self.options.sampling, max_tokens=max(budget, 1), **extra)

    def _describe(self, segment: Segment, logprobs: list[float]) -> None:
        speech = self.speech
        segment.text_token_ids = [t for t in segment.token_ids if speech.is_text(t)]
        segment.text = self.model.tokenizer.decode(segment.text_token_ids)
        segment.compression_ratio = compression_ratio(segment.text)
        mine = logprobs[segment.first_index : segment.first_index + len(segment.token_ids)]
        segment.avg_logprob = sum(mine) / len(mine) if mine else 0.0

    async def _detect_language(self, window) -> str:
        """A separate one-step request, from <|startoftranscript|> alone (transformers
        detects the language without the previous-text prompt)."""
        prompt = self.speech.detection_prompt()
        outputs = self.model.engine.generate(
            f"{self.request_id}-language",
            prompt.token_ids,
            SamplingParams(temperature=0.0, max_tokens=1),
            priority=self.options.priority,
            encoder_input=EncoderInput(window, prompt.decoding),
        )
        tokens: list[int] = []
        try:
            async for output in outputs:
                tokens += output.new_token_ids
        finally:
            await outputs.aclose()
        return self.speech.language_of(tokens[0]) if tokens else ""
