"""Tokenizers for models trained from scratch.

``train_wordpiece`` trains a BERT-style WordPiece tokenizer with the ``tokenizers`` library on the
string fields of JSON-lines corpora and wraps it as a transformers fast tokenizer (``save_pretrained``
then writes files ``AutoTokenizer`` loads). The family's ``Family.scratch`` then writes its randomly
initialised HF-style folder with it, which the family's ``from_pretrained`` loads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

__all__ = ["corpus_texts", "train_wordpiece", "SPECIAL_TOKENS"]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def corpus_texts(paths: Iterable[Path], max_texts: int) -> Iterator[str]:
    """Every non-empty string field of every record, file by file, at most ``max_texts`` texts."""
    n = 0
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise ZooError(f"{path}: file not found (a tokenizer corpus)") from None
        except UnicodeDecodeError as e:
            raise ZooError(f"{path}: not valid UTF-8 ({e.reason})") from None
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ZooError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
            values = rec.values() if isinstance(rec, dict) else [rec]
            for v in values:
                if isinstance(v, str) and v.strip() and n < max_texts:
                    n += 1
                    yield v
            if n >= max_texts:
                return


def train_wordpiece(texts: Iterable[str], *, vocab_size: int, lowercase: bool = True) -> Any:
    """A BERT-style WordPiece tokenizer trained on ``texts`` (``[CLS] text [SEP]``, pad id 0).

    Returns:
        A ``transformers.PreTrainedTokenizerFast``.

    Example:
        >>> tok = train_wordpiece(["a small corpus", "of two texts"], vocab_size=200)
        >>> tok("a corpus")["input_ids"][0] == tok.cls_token_id
        True
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tok.train_from_iterator(list(texts), trainer=trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
