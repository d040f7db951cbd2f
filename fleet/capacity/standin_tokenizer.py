"""A stand-in tokenizer for measuring vLLM's serving speed without the model's own tokenizer files.

`vllm bench serve --dataset-name random` draws token ids, decodes them to text, sends the text and lets the
server encode it again; its lengths are only exact when decoding and re-encoding give the same ids back. With
dummy weights the text means nothing, so one word per token over the model's whole vocabulary does: token i is
the word ``t<i>``, words are split on whitespace, and decoding joins them with single spaces. Every id round-trips
exactly (tested), the vocabulary has the model's size (the server's sampler draws from all of it), and nothing is
downloaded. Only the `tokenizers` library is needed, so the measuring machine can build it from this file alone.
"""

from __future__ import annotations

import json
from pathlib import Path

UNKNOWN = "<unk>"   # the one special token: WordLevel needs one; it takes the last id


def word(token_id: int) -> str:
    return f"t{token_id}"


def build(vocab_size: int):
    """The tokenizer as a `tokenizers.Tokenizer`: ids 0..vocab_size-2 are words, the last id is the unknown token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    if vocab_size < 2:
        raise ValueError(f"vocab_size must be at least 2, not {vocab_size}")
    vocab = {word(i): i for i in range(vocab_size - 1)}
    vocab[UNKNOWN] = vocab_size - 1
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNKNOWN))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)   # joins words with one space, changes nothing else
    tok.add_special_tokens([UNKNOWN])
    return tok


def write(directory: str | Path, vocab_size: int, model_max_length: int = 1 << 20) -> Path:
    """tokenizer.json and tokenizer_config.json in `directory`, loadable by transformers' AutoTokenizer."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    build(vocab_size).save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "unk_token": UNKNOWN, "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": False, "add_bos_token": False, "add_eos_token": False}))
    return directory


def round_trips(tokenizer, ids: list[int]) -> bool:
    """Whether decoding `ids` and encoding the text gives exactly `ids` back (no special tokens added)."""
    text = tokenizer.decode(ids, skip_special_tokens=False)
    again = tokenizer.encode(text, add_special_tokens=False)
    return list(getattr(again, "ids", again)) == list(ids)
