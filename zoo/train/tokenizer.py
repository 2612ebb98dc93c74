"""Tokenizers for models trained from scratch.

``train_wordpiece`` trains a BERT-style WordPiece tokenizer with the ``tokenizers`` library on the
string fields of JSON-lines corpora and wraps it as a transformers fast tokenizer (``save_pretrained``
then writes files ``AutoTokenizer`` loads). The family's ``Family.scratch`` then writes its randomly
initialised HF-style folder with it, which the family's ``from_pretrained`` loads.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.datafiles import conll_texts
from zoo.errors import ZooError

__all__ = ["corpus_texts", "train_wordpiece", "wordpiece_vocab", "SPECIAL_TOKENS"]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def corpus_texts(paths: Iterable[Path], max_texts: int) -> Iterator[str]:
    """Every non-empty string field of every record, file by file, at most ``max_texts`` texts; a ``.conll`` file
    gives its sentences (``zoo.datafiles.conll_texts``)."""
    n = 0
    for path in paths:
        if path.suffix == ".conll":
            for text in conll_texts(path)[: max_texts - n]:
                n += 1
                yield text
            if n >= max_texts:
                return
            continue
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
    """A BERT-style WordPiece tokenizer trained on ``texts`` (``[CLS] text [SEP]``, pad id 0), deterministically.

    The vocabulary is learnt as the ``tokenizers`` WordPiece trainer learns it (BPE merges over the words of the
    BERT normalizer and pre-tokenizer, word-inner symbols prefixed ``##``), by :func:`wordpiece_vocab`, which
    breaks count ties by the symbols themselves: the same texts give the same vocabulary in every process (the
    library's trainer breaks them in hash order, so two runs differed by a token or two and shifted ids).

    Returns:
        A ``transformers.PreTrainedTokenizerFast``.

    Example:
        >>> tok = train_wordpiece(["a small corpus", "of two texts"], vocab_size=200)
        >>> tok("a corpus")["input_ids"][0] == tok.cls_token_id
        True
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        words.update(w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    vocab = wordpiece_vocab(words, vocab_size, SPECIAL_TOKENS)
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
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


def wordpiece_vocab(words: Mapping[str, int], vocab_size: int, specials: Sequence[str] = ()) -> list[str]:
    """The WordPiece vocabulary of counted words: ``specials``, every symbol, then BPE merges, ``vocab_size`` at most.

    A word starts as its first character followed by ``##``-prefixed characters; the most frequent adjacent pair
    (summed over the words' counts) is merged, again and again, until the vocabulary is full or no pair is left.
    Ties go to the smallest pair of strings, so the result depends on the counts only. The alphabet is kept whole
    even beyond ``vocab_size`` (as the library's trainer does), so every word can be tokenized.
    """
    forms = sorted(words)
    seqs = [[w[0], *(f"##{c}" for c in w[1:])] for w in forms]
    counts = [words[w] for w in forms]
    vocab = list(dict.fromkeys([*specials, *sorted({s for seq in seqs for s in seq})]))
    known = set(vocab)
    pairs: defaultdict[tuple[str, str], int] = defaultdict(int)  # pair -> weighted count
    where: defaultdict[tuple[str, str], set[int]] = defaultdict(set)  # pair -> words holding it
    for i, seq in enumerate(seqs):
        for pair in zip(seq, seq[1:], strict=False):
            pairs[pair] += counts[i]
            where[pair].add(i)
    heap = [(-n, a, b) for (a, b), n in pairs.items()]
    heapq.heapify(heap)
    while heap and len(vocab) < vocab_size:
        n, a, b = heapq.heappop(heap)
        if pairs.get((a, b), 0) != -n or n == 0:
            continue  # a stale entry: the pair's count changed since it was pushed
        merged = a + b.removeprefix("##")
        if merged not in known:
            vocab.append(merged)
            known.add(merged)
        changed: set[tuple[str, str]] = set()
        for i in sorted(where.pop((a, b))):
            seq, c = seqs[i], counts[i]
            for pair in zip(seq, seq[1:], strict=False):  # take the word out, merge, put it back
                pairs[pair] -= c
                changed.add(pair)
            out, j = [], 0
            while j < len(seq):
                if j + 1 < len(seq) and seq[j] == a and seq[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(seq[j])
                    j += 1
            seqs[i] = out
            for pair in zip(out, out[1:], strict=False):
                pairs[pair] += c
                where[pair].add(i)
                changed.add(pair)
        pairs.pop((a, b), None)
        for pair in changed:
            if pairs.get(pair, 0) > 0:
                heapq.heappush(heap, (-pairs[pair], *pair))
            else:
                pairs.pop(pair, None)
    return vocab
