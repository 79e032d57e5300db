"""Log-mel features with transformers' WhisperFeatureExtractor, cut into 30 s windows the
way transformers' Whisper `generate` cuts them.

Audio up to one window is padded to 30 s before the log-mel (short-form: the features'
normalisation sees the padding). Longer audio is turned into features as a whole (long-
form: one normalisation over the file) and windows are sliced from them at the seek
position, padded with zeros to the window's frame count."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from service.audio.decode import SAMPLE_RATE

HOP_SECONDS = 0.01  # one mel frame
TIME_PRECISION = 0.02  # one timestamp token
INPUT_STRIDE = 2  # mel frames per encoder position (one timestamp step)


@dataclass(frozen=True)
class Features:
    mel: torch.Tensor  # [n_mels, frames]
    window_frames: int  # frames per encoder window (3000)

    @property
    def num_frames(self) -> int:
        return self.mel.shape[-1]

    def window(self, seek: int) -> torch.Tensor:
        """The window starting at frame `seek`, zero-padded to window_frames."""
        piece = self.mel[:, seek : seek + self.window_frames]
        return F.pad(piece, (0, self.window_frames - piece.shape[-1])).contiguous()


def log_mel(extractor, audio: np.ndarray) -> Features:
    """Short-form when the audio fits one window, else long-form (see the module doc)."""
    window_samples = extractor.n_samples
    window_frames = extractor.nb_max_frames
    if audio.shape[0] <= window_samples:
        mel = extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
    else:
        mel = extractor(
            audio,
            sampling_rate=SAMPLE_RATE,
            return_tensors="pt",
            truncation=False,
            padding="longest",
        ).input_features
    return Features(mel[0].float(), window_frames)
