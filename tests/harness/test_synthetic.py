"""The synthetic source: LongEmbed-style passkey and needle tasks, built deterministically in memory.

passkey needs no data file, so its tests always run; needle reads SciFact and the WikiQA pairs from
../shared/data and is skipped with a reason when that is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import harness
from harness.datasets import synthetic
from harness.datasets.local import RetrievalData
from harness.results import qrels_path, read_qrels, read_run, run_path
from harness.significance import compare
from harness.suites import get_suite
from harness.tasks import get_task, list_tasks
from zoo.errors import ZooError

SMALL = {"n_docs": 8, "n_queries": 4}


def _data_dir(kind: str, request: pytest.FixtureRequest) -> Path | None:
    return request.getfixturevalue("shared_data") if kind == "needle" else None


def _build(kind: str, length: int, data_dir: Path | None, **kw) -> RetrievalData:
    return synthetic.build(kind, length, data_dir=data_dir, **{**SMALL, **kw})


@pytest.mark.parametrize("kind", synthetic.KINDS)
def test_same_seed_same_data_other_seed_other_data(kind: str, request: pytest.FixtureRequest) -> None:
    data_dir = _data_dir(kind, request)
    first, again = (_build(kind, 256, data_dir, seed=7) for _ in range(2))
    synthetic.build.cache_clear()
    rebuilt = _build(kind, 256, data_dir, seed=7)
    other = _build(kind, 256, data_dir, seed=8)
    assert first == again == rebuilt  # rebuilt from scratch, not served by the cache
    assert set(first.queries) == set(other.queries) and set(first.corpus) == set(other.corpus)
    assert first.corpus != other.corpus and first.queries != other.queries


@pytest.mark.parametrize("kind", synthetic.KINDS)
@pytest.mark.parametrize("length", [256, 2048])
def test_lengths_and_statements(kind: str, length: int, request: pytest.FixtureRequest) -> None:
    data = _build(kind, length, _data_dir(kind, request))
    assert len(data.corpus) == SMALL["n_docs"] and len(data.queries) == len(data.qrels) == SMALL["n_queries"]
    for text in data.corpus.values():
        # counted on the whole text by the declared tokenizer, not by the per-word sums the builder uses
        assert length - synthetic.SLACK <= synthetic.n_tokens(text) <= length
    for qid, query in data.queries.items():
        (relevant,) = data.qrels[qid]
        if kind == "passkey":
            name = query.removeprefix("what is the passkey for ").removesuffix("?")
            key = data.corpus[relevant].split(f"{name}'s pass key is ")[1].split(".")[0]
            assert f"Remember it. {key} is the pass key for {name}." in data.corpus[relevant]
            assert [d for d, text in data.corpus.items() if name in text] == [relevant]  # names are unique
        else:
            answer = dict((q, a) for a, q in synthetic._needles(str(request.getfixturevalue("shared_data"))))[query]
            assert [d for d, text in data.corpus.items() if answer in text] == [relevant]


def test_specs_suite_and_names(tmp_path: Path) -> None:
    suite = get_suite("longembed-synthetic")
    assert len(suite) == 12 and suite[0] == "synthetic/passkey-256" and suite[-1] == "synthetic/needle-8192"
    task = get_task("synthetic/passkey-8192", tmp_path)
    spec = task.spec
    assert (spec.type, spec.main_score, spec.splits, spec.source) == ("retrieval", "ndcg@1", ("test",), "synthetic")
    assert spec.options["length"] == 8192 and spec.options["tokenizer"] == synthetic.TOKENIZER
    assert len(spec.options["tokenizer_sha256"]) == 64 and spec.options["sources_sha256"] == {}
    assert get_task("synthetic/passkey-16384", tmp_path).spec.options["length"] == 16384  # LongEmbed's longer ones
    # an empty data dir lists passkey only; needle says what it needs
    assert {s.id for s in list_tasks(tmp_path) if s.source == "synthetic"} == set(suite[:6])
    with pytest.raises(ZooError, match=r"needs scifact/corpus.jsonl and wikiqa-pairs/train.jsonl"):
        get_task("synthetic/needle-256", tmp_path)
    for bad, message in [
        ("synthetic/haystack-256", "ids look like synthetic/<kind>-<length>"),
        ("synthetic/passkey", "ids look like"),
        ("synthetic/passkey-64", "length must be within 128..32768"),
    ]:
        with pytest.raises(ZooError, match=message):
            get_task(bad, tmp_path)


@pytest.mark.data
def test_needle_spec_records_its_sources(shared_data: Path) -> None:
    spec = get_task("synthetic/needle-256", shared_data).spec
    assert spec.options["sources_sha256"] == {
        "scifact/corpus.jsonl": "f4a47c54e01f9dfe7f0cbbcae0e1df17c5a90d6553f3a9d5b1ba32184545b3d8",  # MANIFEST.md
        "wikiqa-pairs/train.jsonl": "5241c42d7d66064ce741ab60e8eacb504b91b4c69c1ce0b436bca0ce5578a125",
    }
    assert "synthetic/needle-8192" in {s.id for s in list_tasks(shared_data)}


@pytest.mark.data
def test_end_to_end_records_per_query_runs(shared_data: Path, results_dir: Path) -> None:
    ids = ["synthetic/passkey-256", "synthetic/needle-256"]
    random_records = harness.evaluate("test-random", ids, results_dir=results_dir, data_dir=shared_data, progress=False)
    bm25_records = harness.evaluate("bm25", ids, results_dir=results_dir, data_dir=shared_data, progress=False)
    for record in random_records + bm25_records:
        assert record.main_score == "ndcg@1" and record.n_items == {"test": 50}
        assert record.data_checksum == get_task(record.task_id, shared_data).checksum()
        assert record.task_options["seed"] == synthetic.SEED
        run = read_run(run_path(results_dir, record.model, record.revision, record.task_id, "test"))
        qrels = read_qrels(qrels_path(results_dir, record.model, record.revision, record.task_id, "test"))
        assert len(run) == len(qrels) == 50
    passkey, needle = (r.get_score() for r in bm25_records)
    # the query names the person; so does one document (twice) and no other: lexical matching finds it
    assert passkey == 1.0
    assert 0.4 < needle < 0.8  # 0.58: WikiQA questions share some words with their answers, some with SciFact
    report = compare(["test-random", "bm25"], ids, results_dir=results_dir, save=False)
    assert [(row.task_id, row.n) for row in report.rows] == [(i, 50) for i in ids]


def test_ndcg_at_1_is_mtebs(tmp_path: Path) -> None:
    """The main score, as LongEmbed reports it: mteb's ndcg_at_1 on the same data and model."""
    mteb = pytest.importorskip("mteb")
    from harness.datasets import mteb as source
    from zoo.registry import create_model

    model, task = create_model("test-random"), get_task("synthetic/passkey-256", tmp_path)
    native = task.evaluate(model, progress=False).scores["test"]
    res = mteb.evaluate(
        source.MtebEncoder(model), [source.to_mteb_task(task)], cache=None, show_progress_bar=False, co2_tracker=False
    )
    upstream = res.task_results[0].scores["test"][0]
    assert 0.0 < native["ndcg@1"] < 1.0 and native["ndcg@1"] == pytest.approx(upstream["ndcg_at_1"], abs=1e-4)
