"""A byte-level BPE for the benchmark models, trained on a deterministic synthetic corpus:
pseudo-words built from syllables, drawn with a Zipf-like law, so that training reaches
the requested vocabulary (32k merges for the "small" model) in a few seconds and every id
of the model's vocabulary is a real token the service can detokenize."""

from __future__ import annotations

import itertools
import random

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from service.demo_model import SPECIAL_TOKENS

_ONSETS = (
    "", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w",
    "z", "br", "cr", "dr", "fl", "gr", "pl", "pr", "st", "tr", "sh", "ch", "th", "sk", "sl",
    "sp",
)  # fmt: skip
_NUCLEI = ("a", "e", "i", "o", "u", "ai", "ea", "ou", "io", "y", "oo", "ie")
_CODAS = ("", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "ck", "x", "rt", "ls")
_PUNCTUATION = (".", ",", "!", "?", ";")


def synthetic_corpus(
    seed: int = 0, num_lines: int = 20_000, words_per_line: int = 25, lexicon_draws: int = 120_000
) -> list[str]:
    """Lines of pseudo-words; the same lines for the same arguments, on every machine."""
    rng = random.Random(seed)
    lexicon = sorted({_pseudo_word(rng) for _ in range(lexicon_draws)})
    rng.shuffle(lexicon)
    cumulative = list(itertools.accumulate(1.0 / (rank + 10) for rank in range(len(lexicon))))
    return [
        " ".join(rng.choices(lexicon, cum_weights=cumulative, k=words_per_line))
        + rng.choice(_PUNCTUATION)
        for _ in range(num_lines)
    ]


def _pseudo_word(rng: random.Random) -> str:
    syllables = rng.choice((1, 1, 2, 2, 2, 3, 3, 4))
    return "".join(
        rng.choice(_ONSETS) + rng.choice(_NUCLEI) + rng.choice(_CODAS) for _ in range(syllables)
    )


def train_tokenizer(vocab_size: int, seed: int = 0) -> Tokenizer:
    """Exactly `vocab_size` tokens (special tokens first), or ValueError."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(synthetic_corpus(seed), trainer)
    if tokenizer.get_vocab_size() != vocab_size:
        raise ValueError(
            f"the synthetic corpus gave {tokenizer.get_vocab_size()} tokens, not {vocab_size}"
        )
    return tokenizer
