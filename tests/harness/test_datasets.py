"""harness.datasets.local: detection rules, task.toml, readers and their error messages, shared data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.datasets import local
from harness.tasks import TASK_TYPES, get_task, list_tasks
from tests import taskdata
from zoo.errors import ZooError

# Detection rules =================================================================================


def _beir(folder: Path) -> Path:
    return taskdata.retrieval_folder(folder)


def _trec(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "queries.tsv").write_text("1\twhat is a cat\n", encoding="utf-8")
    (folder / "qrels.txt").write_text("1 0 7 1\n", encoding="utf-8")
    (folder / "docs.tsv").write_text("7\tcats are small felines\n", encoding="utf-8")
    return folder


def _conll(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "test.conll").write_text("扬\tB\n帆\tE\n\n远\tS\n", encoding="utf-8")
    return folder


def _sts(folder: Path) -> Path:
    return taskdata.sts(folder, [("a b", "a c", 2.5), ("x", "y", 0.0)])


def _pair(folder: Path) -> Path:
    return taskdata.pairs(folder, [("a b", "a c", 1), ("x", "y", 0)])


def _classification(folder: Path) -> Path:
    return taskdata.labelled(folder, {"train": [("good", "pos"), ("bad", "neg")], "test": [("fine", "pos")]})


def _clustering(folder: Path) -> Path:
    return taskdata.labelled(folder, {"test": [("good", "pos"), ("bad", "neg")]})


def _reranking(folder: Path) -> Path:
    return taskdata.reranking(folder, [("q", ["p"], ["n1", "n2"])])


def _dev_only_sts(folder: Path) -> Path:
    return taskdata.sts(folder, [("a b", "a c", 2.5)], split="dev")


def _triplets(folder: Path) -> Path:
    taskdata.write_jsonl(folder / "train.jsonl", [{"anchor": "a", "positive": "b", "negative": "c"}])
    return folder


def _pairs_train_only(folder: Path) -> Path:
    return taskdata.sts(folder, [("a b", "a c", 2.5)], split="train")


def _unknown_shape(folder: Path) -> Path:
    taskdata.write_jsonl(folder / "test.jsonl", [{"foo": 1, "bar": 2}])
    return folder


RULES = [
    (_beir, "retrieval", ["test"]),
    (_trec, "trec", ["test"]),
    (_conll, "seqlabel", ["test"]),
    (_sts, "sts", ["test"]),
    (_pair, "pair_classification", ["test"]),
    (_classification, "classification", ["test"]),
    (_clustering, "clustering", ["test"]),
    (_reranking, "reranking", ["test"]),
    (_dev_only_sts, "sts", ["dev"]),
    (_triplets, None, None),
    (_pairs_train_only, None, None),
    (_unknown_shape, None, None),
]


@pytest.mark.parametrize(("make", "task_type", "splits"), RULES, ids=[r[0].__name__.strip("_") for r in RULES])
def test_detect_rules(tmp_path: Path, make, task_type: str | None, splits: list[str] | None) -> None:
    info = local.detect(make(tmp_path / "task"))
    if task_type is None:
        assert info is None
    else:
        assert info is not None and info["type"] == task_type and info["splits"] == splits
        assert info.get("train_split") == ("train" if task_type == "classification" else None)


def test_discover_lists_task_folders_only(tmp_path: Path) -> None:
    for make, _, _ in RULES:
        make(tmp_path / make.__name__.strip("_"))
    (tmp_path / ".hidden").mkdir()
    _sts(tmp_path / ".hidden" / "x")
    (tmp_path / "afile.jsonl").write_text("{}\n")
    found = local.discover(tmp_path)
    assert {k: v[1]["type"] for k, v in found.items()} == {
        "local/beir": "retrieval",
        "local/trec": "trec",
        "local/conll": "seqlabel",
        "local/sts": "sts",
        "local/pair": "pair_classification",
        "local/classification": "classification",
        "local/clustering": "clustering",
        "local/reranking": "reranking",
        "local/dev_only_sts": "sts",
    }
    assert found["local/sts"][0] == tmp_path / "sts"
    ids = [s.id for s in list_tasks(tmp_path, supported_only=True) if s.source == "local"]
    assert ids == sorted(ids) and "local/trec" in ids and "local/conll" in ids and len(ids) == 9


def test_retrieval_split_comes_from_qrels(tmp_path: Path) -> None:
    folder = taskdata.beir(tmp_path / "t", {"d": "doc"}, {"q": "query"}, {"q": {"d": 1}}, split="dev")
    assert local.detect(folder)["splits"] == ["dev"]
    taskdata.beir(folder, {"d": "doc"}, {"q": "query"}, {"q": {"d": 1}}, split="train")
    assert local.detect(folder)["splits"] == ["dev"]
    taskdata.beir(folder, {"d": "doc"}, {"q": "query"}, {"q": {"d": 1}}, split="test")
    assert local.detect(folder)["splits"] == ["test"]


def test_language_from_readme_else_cjk_guess(tmp_path: Path) -> None:
    zh = taskdata.sts(tmp_path / "zh", [("我爱北京", "北京", 1.0)])
    assert local.detect(zh)["languages"] == ["zh"]
    en = _sts(tmp_path / "en")
    assert local.detect(en)["languages"] == ["en"]
    (en / "README.md").write_text("# x\n\n- Task: sts\n- Language: de\n", encoding="utf-8")
    assert local.detect(en)["languages"] == ["de"]


# task.toml =======================================================================================


def test_task_toml_overrides_type_and_main_score(tmp_path: Path) -> None:
    folder = _classification(tmp_path / "clf")
    (folder / "task.toml").write_text(
        'type = "clustering"\nmain_score = "v_measure"\ndescription = "texts"\nlanguages = ["fr"]\n', encoding="utf-8"
    )
    info = local.detect(folder)
    assert info["type"] == "clustering" and info["main_score"] == "v_measure" and info["languages"] == ["fr"]
    task = get_task("local/clf", tmp_path)
    assert type(task) is TASK_TYPES["clustering"]
    assert task.spec.description == "texts" and task.spec.languages == ("fr",) and task.spec.train_split is None


def test_task_toml_main_score_only_keeps_detected_type(tmp_path: Path) -> None:
    folder = _beir(tmp_path / "ret")
    (folder / "task.toml").write_text('main_score = "recall@10"\n', encoding="utf-8")
    task = get_task("local/ret", tmp_path)
    assert task.spec.type == "retrieval" and task.main_metric == "recall@10"


def test_task_toml_splits(tmp_path: Path) -> None:
    folder = taskdata.sts(tmp_path / "s", [("a", "b", 1.0)], split="dev")
    taskdata.sts(folder, [("a", "b", 1.0)], split="test")
    (folder / "task.toml").write_text('splits = ["dev", "test"]\n', encoding="utf-8")
    assert get_task("local/s", tmp_path).spec.splits == ("dev", "test")


def test_task_toml_type_retrieval_on_beir_layout(tmp_path: Path) -> None:
    folder = _beir(tmp_path / "ret")
    (folder / "task.toml").write_text('type = "retrieval"\n', encoding="utf-8")
    info = local.detect(folder)
    assert info is not None and info["type"] == "retrieval" and info["splits"] == ["test"]


def test_invalid_task_toml_names_the_file(tmp_path: Path) -> None:
    folder = _sts(tmp_path / "s")
    (folder / "task.toml").write_text("type = \n", encoding="utf-8")
    with pytest.raises(ZooError, match=r"task\.toml: invalid TOML"):
        local.detect(folder)


# Readers =========================================================================================


def test_read_beir(tmp_path: Path) -> None:
    folder = taskdata.beir(
        tmp_path / "b",
        {"d1": ("Title", "body one"), "d2": "body two", "d3": ""},
        {"q1": "first", "q2": "second", "q3": "never judged"},
        {"q1": {"d1": 1, "d3": 0}, "q2": {"d2": 2}},
    )
    data = local.load_split(folder, "retrieval", "test")
    assert data.corpus == {"d1": "Title body one", "d2": "body two", "d3": ""}  # empty documents stay
    assert data.queries == {"q1": "first", "q2": "second"}  # only judged queries
    assert data.qrels == {"q1": {"d1": 1, "d3": 0}, "q2": {"d2": 2}}


def test_read_beir_without_header_and_numeric_ids(tmp_path: Path) -> None:
    folder = tmp_path / "b"
    taskdata.write_jsonl(folder / "corpus.jsonl", [{"_id": 7, "text": "doc"}])
    taskdata.write_jsonl(folder / "queries.jsonl", [{"_id": 3, "text": "q"}])
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text("3\t7\t1\r\n\n", encoding="utf-8")
    data = local.read_beir(folder, "test")
    assert data.corpus == {"7": "doc"} and data.queries == {"3": "q"} and data.qrels == {"3": {"7": 1}}


@pytest.mark.parametrize(
    ("qrels", "message"),
    [
        ("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td1\n", r"qrels/test\.tsv:3: expected 3 tab-separated fields"),
        ("q1\td1\tone\n", r"qrels/test\.tsv:1: score must be an integer, got 'one'"),
        ("q1 d1 1\n", r"qrels/test\.tsv:1: expected 3 tab-separated fields .* got 1"),
        ("query-id\tcorpus-id\tscore\n", r"qrels/test\.tsv: no judgements"),
        ("q404\td1\t1\n", r"qrels/test\.tsv: query-id 'q404' is not in .*queries\.jsonl"),
        ("q1\td404\t1\n", r"qrels/test\.tsv: corpus-id 'd404' is not in .*corpus\.jsonl"),
    ],
)
def test_bad_qrels(tmp_path: Path, qrels: str, message: str) -> None:
    folder = taskdata.beir(tmp_path / "b", {"d1": "doc"}, {"q1": "query"}, {"q1": {"d1": 1}})
    (folder / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    with pytest.raises(ZooError, match=message):
        local.read_beir(folder, "test")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"sentence1": "a", "sentence2": "b", "score": 1}\n\n{"sentence1": "a", ', r"test\.jsonl:3: invalid JSON"),
        (
            b'{"sentence1": "a", "sentence2": "b", "score": 1}\n{"sentence1": "\xe9t\xe9"}\n',
            r"test\.jsonl:2: not valid UTF-8 \(byte 0xe9 at column 16\)",
        ),
        (b'["a", "b", 1]\n', r"test\.jsonl:1: expected a JSON object, got list"),
        (b'{"sentence1": "a", "score": 1}\n', r"test\.jsonl:1: missing field 'sentence2'"),
        (b'{"sentence1": "a", "sentence2": "  ", "score": 1}\n', r"test\.jsonl:1: empty text in sentence2"),
        (b'{"sentence1": "a", "sentence2": 5, "score": 1}\n', r"test\.jsonl:1: sentence2 must be a string, got int"),
        (
            b'{"sentence1": "a", "sentence2": "b", "score": "high"}\n',
            r"test\.jsonl:1: score must be a number, got 'high'",
        ),
        (b'{"sentence1": "a", "sentence2": "b", "score": true}\n', r"test\.jsonl:1: score must be a number, got True"),
        (b"\n\n", r"test\.jsonl: no records"),
    ],
    ids=["json", "utf8", "object", "field", "empty", "type", "number", "bool", "norecords"],
)
def test_bad_pairs_name_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "test.jsonl").write_bytes(content)
    with pytest.raises(ZooError, match=message):
        local.load_split(tmp_path, "sts", "test")


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match=r"test\.jsonl: file not found"):
        local.load_split(tmp_path, "sts", "test")
    with pytest.raises(ZooError, match="data folder not found"):
        local.load_split(tmp_path / "nope", "sts", "test")
    with pytest.raises(ZooError, match="no local reader for task type 'nosuchtype'"):
        local.load_split(tmp_path, "nosuchtype", "test")


def test_read_labelled_and_reranking(tmp_path: Path) -> None:
    taskdata.labelled(tmp_path, {"test": [("one", 1), ("two", "b")]})
    assert local.read_labelled(tmp_path, "test") == local.LabelledData(["one", "two"], ["1", "b"])
    taskdata.labelled(tmp_path, {"test": [("one", 1.5)]})
    with pytest.raises(ZooError, match=r"test\.jsonl:1: label must be a string or an integer, got 1\.5"):
        local.read_labelled(tmp_path, "test")
    taskdata.reranking(tmp_path, [("q", ["p"], []), ("q2", ["p2", "p3"], ["n"])])
    assert local.read_reranking(tmp_path, "test") == local.RerankingData(
        ["q", "q2"], [["p"], ["p2", "p3"]], [[], ["n"]]
    )
    taskdata.reranking(tmp_path, [("q", ["p"], ["n"]), ("q2", [], ["n"])])
    with pytest.raises(ZooError, match=r"test\.jsonl:2: no positive candidate"):
        local.read_reranking(tmp_path, "test")
    taskdata.write_jsonl(tmp_path / "test.jsonl", [{"query": "q", "positive": "p", "negative": []}])
    with pytest.raises(ZooError, match=r"test\.jsonl:1: positive must be a list of strings"):
        local.read_reranking(tmp_path, "test")


def test_resolve_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert local.resolve_data_dir(tmp_path) == tmp_path.resolve()
    monkeypatch.setenv("ZOOBENCH_DATA", str(tmp_path))
    assert local.resolve_data_dir() == tmp_path.resolve()
    with pytest.raises(ZooError, match=r"no data dir: looked in .*nope"):
        local.resolve_data_dir(tmp_path / "nope")
    monkeypatch.setenv("ZOOBENCH_DATA", str(tmp_path / "gone"))
    with pytest.raises(ZooError, match="gone"):
        local.resolve_data_dir()


def test_folder_checksum_tracks_data_not_readme(tmp_path: Path) -> None:
    folder = _sts(tmp_path / "s")
    before = local.folder_checksum(folder)
    assert before.startswith("sha256:") and len(before) == len("sha256:") + 64
    (folder / "README.md").write_text("notes\n")
    assert local.folder_checksum(folder) == before
    taskdata.sts(folder, [("a b", "a c", 2.0), ("x", "y", 0.0)])
    assert local.folder_checksum(folder) != before


def test_get_task_errors(tmp_path: Path) -> None:
    _sts(tmp_path / "stsb")
    _triplets(tmp_path / "triples")
    _conll(tmp_path / "ner")
    with pytest.raises(ZooError, match=r"unknown task 'local/stbs'.*did you mean local/stsb\?"):
        get_task("local/stbs", tmp_path)
    with pytest.raises(ZooError, match=r"ids look like <source>/<name>"):
        get_task("stsb", tmp_path)
    with pytest.raises(ZooError, match=r"ids look like <source>/<name>"):
        get_task("hf/stsb", tmp_path)
    with pytest.raises(ZooError, match="holds no evaluation split"):
        get_task("local/triples", tmp_path)
    assert get_task("local/ner", tmp_path).spec.type == "seqlabel"


# Shared data =====================================================================================

SHARED_TYPES = {
    "local/scifact": "retrieval",
    "local/cacm": "retrieval",
    "local/cranfield": "retrieval",
    "local/npl": "retrieval",
    "local/stsb": "sts",
    "local/sts12": "sts",
    "local/sts13": "sts",
    "local/afqmc": "sts",
    "local/lcqmc": "sts",
    "local/mrpc": "pair_classification",
    "local/ocnli": "pair_classification",
    "local/banking77": "classification",
    "local/tnews": "classification",
    "local/trec-qc": "classification",
    "local/agnews-clustering": "clustering",
    "local/csl-clustering": "clustering",
    "local/wikiqa-reranking": "reranking",
    "local/trec-dl-2019-passage": "trec",
    "local/cluener": "seqlabel",
    "local/msr-cws": "seqlabel",
    "local/msra-ner": "seqlabel",
    "local/pku-cws": "seqlabel",
    "local/weibo-ner": "seqlabel",
}


@pytest.mark.data
def test_shared_data_task_types(shared_data: Path) -> None:
    specs = {s.id: s for s in list_tasks(shared_data) if s.source == "local"}
    assert {i: s.type for i, s in specs.items()} == SHARED_TYPES  # training-only folders are not tasks
    assert specs["local/stsb"].splits == ("test",) and specs["local/stsb"].languages == ("en",)
    assert specs["local/afqmc"].languages == ("zh",)
    assert specs["local/banking77"].train_split == "train"
    supported = {s.id for s in list_tasks(shared_data, supported_only=True) if s.source == "local"}
    assert supported == {i for i, t in SHARED_TYPES.items() if t in TASK_TYPES}


@pytest.mark.data
def test_shared_data_sizes_match_manifest(shared_data: Path) -> None:
    scifact = get_task("local/scifact", shared_data)
    assert scifact.main_metric == "ndcg@10"
    data = scifact.load("test")
    assert (len(data.corpus), len(data.queries), sum(map(len, data.qrels.values()))) == (5183, 300, 339)
    stsb = get_task("local/stsb", shared_data)
    assert stsb.main_metric == "cosine_spearman" and len(stsb.load("test").gold) == 1379
    train, test = get_task("local/banking77", shared_data).load("test")
    assert (len(train.texts), len(test.texts), len(set(test.labels))) == (10003, 3080, 77)
    rerank = get_task("local/wikiqa-reranking", shared_data).load("test")
    assert len(rerank.queries) == 237 and all(rerank.positives)
    mrpc = get_task("local/mrpc", shared_data).load("test")
    assert len(mrpc.gold) == 1725 and set(mrpc.gold) == {0.0, 1.0}


def test_readers_skip_blank_lines_but_count_them(tmp_path: Path) -> None:
    path = tmp_path / "test.jsonl"
    rec = json.dumps({"sentence1": "a", "sentence2": "b", "score": 1})
    path.write_text(f"\n{rec}\n   \n{rec}\n\n" + '{"sentence1": ""}\n', encoding="utf-8")
    with pytest.raises(ZooError, match=r"test\.jsonl:6: missing field 'sentence2'"):
        local.read_pairs(tmp_path, "test", "score")
