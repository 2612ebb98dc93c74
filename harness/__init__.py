"""zoobench's benchmark harness: tasks, suites, the runner, result records and significance tests."""

from harness.results import TaskResult, load_results
from harness.runner import evaluate
from harness.significance import compare
from harness.suites import get_suite, list_suites
from harness.tasks import get_task, list_tasks

__all__ = ["evaluate", "compare", "get_task", "list_tasks", "get_suite", "list_suites", "TaskResult", "load_results"]
