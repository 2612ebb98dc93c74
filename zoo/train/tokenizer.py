"""Tokenizers and initial weights for models trained from scratch.

``train_wordpiece`` trains a BERT-style WordPiece tokenizer with the ``tokenizers`` library on the
string fields of JSON-lines corpora and wraps it as a transformers fast tokenizer (``save_pretrained``
then writes files ``AutoTokenizer`` loads). ``SCRATCH`` maps a family to the function that writes its
randomly initialised HF-style folder, which the family's ``from_pretrained`` then loads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

__all__ = ["corpus_texts", "train_wordpiece", "write_bert_scratch", "write_mgte_scratch", "SCRATCH", "SPECIAL_TOKENS"]

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


def write_bert_scratch(folder: Path, tokenizer: Any, cfg: Any, *, seed: int) -> Path:
    """Write a randomly initialised ``BertModel`` (seeded) and its tokenizer as an HF-style folder."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = BertModel(config, add_pooling_layer=False)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.model_max_length = cfg.max_position
    tokenizer.save_pretrained(folder)
    return folder


# RoPE base of scratch mGTE models: the paper's first pre-training stage (MLM-2048) uses 10,000; the released
# 8192-token models use 160,000, which only matters for contexts far longer than a scratch model's.
MGTE_SCRATCH_ROPE_THETA = 10000.0
# Initial bias of a scratch model's sparse head. The last hidden states of a random model share a large common
# direction, so with a zero bias ReLU(w.h) can be 0 for every token (it is for seed 0 of mgte/tiny-scratch): a dead
# head that never gets a gradient. With bias 1 every token starts near weight 1, i.e. lexical scores start as
# counts of shared tokens, and the mgte loss moves them from there.
MGTE_SCRATCH_SPARSE_BIAS = 1.0


def write_mgte_scratch(folder: Path, tokenizer: Any, cfg: Any, *, seed: int) -> Path:
    """Write a randomly initialised mGTE (``MGTEModel.from_config``, seeded) with its heads, and its tokenizer.

    The architecture is mGTE's "transformer++" at the sizes of ``cfg`` (a ``ScratchConfig``): RoPE with base
    ``MGTE_SCRATCH_ROPE_THETA``, GeGLU, post-LayerNorm, hidden dropout ``cfg.dropout`` and no attention-probability
    dropout (as mGTE), one token type (two with the rerank head: the WordPiece pair encoding marks the document
    with token type 1, as BERT's segments); the heads are ``cfg.heads``: ``"sparse"`` (default; ``Linear(H, 1)``, bias
    ``MGTE_SCRATCH_SPARSE_BIAS``) so the ``mgte`` loss can train it, ``"rerank"`` (pooler + ``Linear(H, 1)``, normal
    init as upstream) so ``listwise-ce`` can train a cross-encoder.
    """
    from zoo.families.mgte import MGTEConfig, MGTEModel

    heads = list(getattr(cfg, "heads", ["sparse"]))
    unknown = sorted(set(heads) - {"sparse", "rerank"})
    if unknown or not heads:
        raise ZooError(f"model.scratch.heads: {unknown[0] if unknown else 'none'!r}; mGTE's heads: sparse, rerank")
    config = MGTEConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=cfg.max_position,
        rope_theta=MGTE_SCRATCH_ROPE_THETA,
        pad_token_id=tokenizer.pad_token_id,
        type_vocab_size=2 if "rerank" in heads else 1,
    )
    import torch

    tokenizer.model_max_length = cfg.max_position
    model = MGTEModel.from_config(
        config,
        tokenizer,
        seed=seed,
        sparse_head="sparse" in heads,
        rerank_head="rerank" in heads,
        max_tokens=cfg.max_position,
    )
    if model.sparse_head is not None:
        with torch.no_grad():
            model.sparse_head.bias.fill_(MGTE_SCRATCH_SPARSE_BIAS)
    return model.save_pretrained(folder)


# family -> writer(folder, tokenizer, ScratchConfig, seed=...) of a random-init folder its from_pretrained loads
SCRATCH: dict[str, Callable[..., Path]] = {"gte": write_bert_scratch, "mgte": write_mgte_scratch}
