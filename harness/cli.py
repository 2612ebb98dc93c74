"""``zoobench``: the command line, a thin layer over the Python API.

    zoobench ls models [PATTERN] | ls tasks [PATTERN] [--data-dir D] | ls suites [PATTERN]
    (ls tasks 'mteb/*' lists mteb's task registry, ls suites 'mteb:*' its benchmarks)
    zoobench run --model M (--suite S | --tasks T[,T..]) [--results DIR] [--overwrite]
    zoobench results [--results DIR] [--model PATTERN] [--task PATTERN]
    zoobench compare A B [C ..] (--suite S | --tasks T[,T..]) [--results DIR] [--metric M]
                     [--stat-test student|fisher|tukey] [--alpha 0.05] [--latex FILE] [--json FILE]
    zoobench claims [--claims DIR] [--results DIR] [--id PATTERN] [--json | --markdown]
    zoobench export --format mteb --results DIR --out DIR [--model PATTERN]
    zoobench export --format sentence-transformers --model TRAINED_MODEL --out DIR
    zoobench train --recipe R [--set KEY=VALUE ..] [--out DIR] [--no-resume]
    zoobench leaderboard [--results DIR] [--port P]

Errors in the input (unknown names, bad data files) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from zoo.errors import ZooError

__all__ = ["main", "build_parser"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="where local tasks live (default: $ZOOBENCH_DATA, ./data, ../shared/data)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(prog="zoobench", description="Benchmark text embedding and ranking models.")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE to register more models (repeatable; also $ZOOBENCH_PLUGINS)",
    )
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    ls = sub.add_parser("ls", help="list models, tasks or suites")
    ls.add_argument("what", choices=("models", "tasks", "suites"))
    ls.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern on names (default: *)")
    _common(ls)

    run = sub.add_parser("run", help="evaluate a model on a suite or tasks")
    run.add_argument("--model", "-m", required=True, help="registered model name (see `zoobench ls models`)")
    which = run.add_mutually_exclusive_group(required=True)
    which.add_argument("--suite", "-s", help="suite name (see `zoobench ls suites`)")
    which.add_argument("--tasks", "-t", help="comma-separated task ids, e.g. local/scifact,local/stsb")
    run.add_argument("--results", default="results", help="results folder (default: results)")
    run.add_argument("--overwrite", action="store_true", help="recompute tasks that already have a result")
    run.add_argument("--batch-size", type=int, default=32, help="encoder batch size (default: 32)")
    run.add_argument(
        "--model-kwarg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option of the model's factory (repeatable), e.g. dtype=bfloat16; kept in the results' revision",
    )
    run.add_argument(
        "--task-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option over every task's own (repeatable), e.g. rerank_depth=20 (a ranker re-ranks BM25's top 20)",
    )
    run.add_argument(
        "--device", help="where torch models run: auto (CUDA when present, else CPU), cpu, cuda, cuda:1 (default: auto)"
    )
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    run.add_argument("--cache-dir", help="embedding cache root (default: $ZOOBENCH_CACHE or ~/.cache/zoobench)")
    _common(run)

    res = sub.add_parser("results", help="table of the results in a results folder")
    res.add_argument("--results", default="results", help="results folder (default: results)")
    res.add_argument("--model", default="*", help="fnmatch pattern on model names")
    res.add_argument("--task", default="*", help="fnmatch pattern on task ids")

    exp = sub.add_parser("export", help="write the records of a results folder in another tool's format")
    exp.add_argument(
        "--format",
        required=True,
        choices=("mteb", "sentence-transformers"),
        help="mteb: a results folder in mteb's layout; sentence-transformers: a trained model as an ST folder",
    )
    exp.add_argument("--results", default="results", help="results folder (default: results)")
    exp.add_argument("--out", required=True, help="output folder, e.g. ~/.cache/mteb/results for mteb")
    exp.add_argument("--model", default="*", help="fnmatch pattern on model names (the model, for a model format)")

    cl = sub.add_parser("claims", help="check papers' claims (claims/*.toml) against the stored results")
    cl.add_argument("--claims", default="claims", help="claims folder or file (default: claims)")
    cl.add_argument("--results", default="results", help="results folder (default: results)")
    cl.add_argument("--id", default="*", help="fnmatch pattern on claim ids")
    fmt = cl.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    fmt.add_argument("--markdown", action="store_true", help="print the verdicts as a Markdown table")
    cl.add_argument("--no-save", action="store_true", help="do not store the verdicts in RESULTS/_claims/claims.json")

    from zoo.train import add_arguments  # light: no torch until a model trains

    add_arguments(sub.add_parser("train", help="train a model from a recipe (zoo/recipes) and register it"))

    cmp = sub.add_parser("compare", help="significance tests between models' stored results")
    cmp.add_argument("models", nargs="+", metavar="MODEL", help="two or more models: NAME or NAME@REVISION")
    which = cmp.add_mutually_exclusive_group(required=True)
    which.add_argument("--suite", "-s", help="suite name (see `zoobench ls suites`)")
    which.add_argument("--tasks", "-t", help="comma-separated task ids, e.g. local/scifact,local/stsb")
    cmp.add_argument("--results", default="results", help="results folder (default: results)")
    cmp.add_argument("--metric", help="metric to test (default: each task's main score)")
    cmp.add_argument(
        "--stat-test", default="student", choices=("student", "fisher", "tukey"), help="test for ranked lists"
    )
    cmp.add_argument("--correction", default="holm", choices=("holm", "bonferroni", "none"), help="across tasks")
    cmp.add_argument("--alpha", type=float, default=0.05, help="significance level (default: 0.05)")
    cmp.add_argument("--latex", metavar="FILE", help="also write the table as LaTeX to FILE")
    cmp.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    _common(cmp)

    lb = sub.add_parser("leaderboard", help="open the Streamlit leaderboard over a results folder")
    lb.add_argument("--results", default="results", help="results folder (default: results)")
    lb.add_argument("--port", type=int, default=8501, help="port on 127.0.0.1 (default: 8501)")
    return parser


def _print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    widest = [max(len(str(x)) for x in col) for col in zip(columns, *rows, strict=True)]
    Console(width=max(120, min(240, sum(widest) + 3 * len(columns) + 1))).print(table)


def _ls(args: argparse.Namespace) -> None:
    if args.what == "models":
        from zoo.registry import get_card, list_models

        rows = []
        for name in list_models(args.pattern):
            c = get_card(name)
            rows.append(
                [
                    name,
                    c.family,
                    str(c.embed_dim or "-"),
                    str(c.max_tokens or "-"),
                    ",".join(c.languages),
                    c.upstream or "-",
                ]
            )
        _print_table("models", ["name", "family", "dim", "max tokens", "languages", "upstream"], rows)
    elif args.what == "tasks":
        from harness.datasets import SOURCES
        from harness.tasks import list_tasks, supported

        source = args.pattern.partition("/")[0]  # a pattern naming a source lists its whole registry (mteb's)
        specs = list_tasks(args.data_dir, source=source if source in SOURCES else None)
        rows = [
            [s.id, s.type + ("" if supported(s) else " (not yet supported)"), ",".join(s.splits), ",".join(s.languages)]
            for s in specs
            if fnmatch.fnmatchcase(s.id, args.pattern)
        ]
        _print_table("tasks", ["id", "type", "splits", "languages"], rows)
    else:
        from harness.suites import PREFIXES, get_suite, list_suites

        rows = []
        for name in list_suites():
            try:
                rows.append([name, ", ".join(get_suite(name, args.data_dir))])
            except ZooError as e:  # a rule-based suite needs the data dir
                rows.append([name, f"({e})"])
        for prefix, (resolve, names) in PREFIXES.items():  # another tool's suites, e.g. mteb's benchmarks
            for name in names():
                ids = resolve(name)
                rows.append([f"{prefix}:{name}", f"{len(ids)} tasks: {', '.join(ids[:3])}{', ...' * (len(ids) > 3)}"])
        _print_table("suites", ["suite", "tasks"], [r for r in rows if fnmatch.fnmatchcase(r[0], args.pattern)])


def _task_ids(args: argparse.Namespace) -> list[str]:
    from harness.suites import get_suite

    if args.suite:
        return list(get_suite(args.suite, args.data_dir))
    ids = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not ids:
        raise ZooError(f"--tasks {args.tasks!r}: no task id (give comma-separated ids, e.g. local/scifact,local/stsb)")
    return ids


def _key_values(pairs: list[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` strings as a dict; values are read as ``--set`` reads them (``zoo.train.config.parse_value``)."""
    from zoo.train.config import parse_value

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ZooError(f"{flag} {pair!r}: expected KEY=VALUE")
        out[key.strip().replace("-", "_")] = parse_value(raw)
    return out


def _run(args: argparse.Namespace) -> None:
    from harness.runner import evaluate

    tasks = _task_ids(args)
    records = evaluate(
        args.model,
        tasks,
        results_dir=args.results,
        data_dir=args.data_dir,
        overwrite=args.overwrite,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        command=args.command,
        cache=False if args.no_cache else None,
        cache_dir=args.cache_dir,
        model_kwargs=_key_values(args.model_kwarg, "--model-kwarg"),
        device=args.device,
        task_options=_key_values(args.task_option, "--task-option"),
    )
    _print_table(
        f"{args.model} (scores x100)",
        ["task", "type", "main score", "value"],
        [[r.task_id, r.task_type, r.main_score, f"{100 * r.get_score():.2f}"] for r in records],
    )


def _results(args: argparse.Namespace) -> None:
    from pathlib import Path

    from harness.results import load_results

    if not Path(args.results).is_dir():
        raise ZooError(f"no results folder {args.results!r} (zoobench run --model M --suite S --results DIR)")
    records, warnings = load_results(args.results)
    for w in warnings:
        print(f"zoobench: warning: skipped {w}", file=sys.stderr)
    records = [
        r for r in records if fnmatch.fnmatchcase(r.model, args.model) and fnmatch.fnmatchcase(r.task_id, args.task)
    ]
    if not records:
        print(f"no results in {args.results}", file=sys.stderr)
        return
    tasks = sorted({r.task_id for r in records})
    table: dict[str, dict[str, float]] = {}
    for r in records:  # a run with factory options (revision <card revision>+key-value) is a row of its own
        card_revision = str(r.model_card.get("revision", ""))
        options = r.revision[len(card_revision) :] if r.revision.startswith(card_revision + "+") else ""
        table.setdefault(r.model + options, {})[r.task_id] = r.get_score()
    rows = []
    # Means over different task sets are not comparable: more tasks first, then the mean.
    for model in sorted(table, key=lambda m: (-len(table[m]), -sum(table[m].values()) / len(table[m]))):
        cells = [f"{100 * table[model][t]:.2f}" if t in table[model] else "-" for t in tasks]
        mean = 100 * sum(table[model].values()) / len(table[model])
        rows.append([model, str(len(table[model])), f"{mean:.2f}", *cells])
    columns = ["model", "tasks", "mean", *(t.split("/", 1)[1] for t in tasks)]
    _print_table(f"main scores x100 ({args.results})", columns, rows)


def _export(args: argparse.Namespace) -> None:
    from harness.export import export
    from zoo.trained import export_sentence_transformers

    model_formats = {"sentence-transformers": export_sentence_transformers}  # these write a model, not results
    if args.format in model_formats:
        print(f"wrote {args.format} model {args.model} to {model_formats[args.format](args.model, args.out)}")
        return
    written = export(args.format, args.results, args.out, model=args.model)
    models = {p.parent.parent.name for p in written}
    print(f"wrote {len(written)} {args.format} results of {len(models)} model(s) to {args.out}")


def _compare(args: argparse.Namespace) -> None:
    import json

    from harness.results import atomic_write
    from harness.significance import compare

    tasks = _task_ids(args)
    report = compare(
        args.models,
        tasks,
        results_dir=args.results,
        metric=args.metric,
        stat_test=args.stat_test,
        alpha=args.alpha,
        correction=args.correction,
    )
    print(report.to_table(), end="")
    if args.latex:
        atomic_write(args.latex, report.to_latex().encode())
    if args.json:
        atomic_write(args.json, json.dumps(report.to_dict(), indent=2, ensure_ascii=False).encode() + b"\n")


def _claims(args: argparse.Namespace) -> None:
    from harness.claims import check_claims, load_claims, save_claims, summary, to_json, to_markdown

    results = check_claims(load_claims(args.claims, args.id), args.results)
    if not args.no_save and args.id == "*":  # the leaderboard's Claims tab shows the stored verdicts of every claim
        save_claims(results, args.results)
    if args.json:
        print(to_json(results))
        return
    if args.markdown:
        print(to_markdown(results))
        return
    rows = [
        [r.claim.id, r.claim.a, r.claim.b, r.claim.expect + (f" (margin {r.claim.margin:g})" if r.claim.margin else ""),
         summary(r) if r.tasks else "-", r.verdict]
        for r in results
    ]  # fmt: skip
    _print_table("claims", ["claim", "A", "B", "B is expected", "Δ (B − A) x100 [CI], adjusted p", "verdict"], rows)
    for r in results:
        if r.verdict in ("missing", "untestable"):
            print(f"{r.claim.id}: {r.verdict}: {r.reason}")
            print("".join(f"  {cmd}\n" for cmd in r.commands), end="")


def _train(args: argparse.Namespace) -> None:
    import json

    from zoo.train import train_from_args

    folder = train_from_args(args)
    name = json.loads((folder / "train.json").read_text(encoding="utf-8"))["name"]
    print(f"trained {name} in {folder}; evaluate it with: zoobench run --model {name} --tasks ...")


def _leaderboard(args: argparse.Namespace) -> None:
    from pathlib import Path

    import leaderboard

    if not Path(args.results).is_dir():
        raise ZooError(f"no results folder {args.results!r} (zoobench run --model M --suite S --results DIR)")
    app = Path(leaderboard.__file__).with_name("app.py")
    server = ["--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(args.port)]
    argv = [sys.executable, "-m", "streamlit", "run", str(app), *server, "--browser.gatherUsageStats", "false"]
    print(f"zoobench leaderboard: http://127.0.0.1:{args.port}/ ({args.results}; Ctrl-C stops it)", flush=True)
    os.execv(sys.executable, [*argv, "--", "--results", os.path.abspath(args.results)])  # streamlit owns Ctrl-C


_VERBS = {
    "ls": _ls,
    "run": _run,
    "results": _results,
    "export": _export,
    "compare": _compare,
    "claims": _claims,
    "train": _train,
    "leaderboard": _leaderboard,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zoobench`` console script; returns the exit code."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command = shlex.join(["zoobench", *argv])
    try:
        from zoo.registry import add_plugins

        add_plugins(args.plugin)  # imported when a lookup needs them (a current card index lists without them)
        _VERBS[args.verb](args)
    except ZooError as e:
        print(f"zoobench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zoobench: interrupted; finished tasks are saved, rerun to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
