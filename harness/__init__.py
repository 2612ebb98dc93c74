"""zoobench's benchmark harness: tasks, suites, the runner and result records."""

from harness.results import TaskResult, load_results
from harness.runner import evaluate
from harness.suites import get_suite, list_suites
from harness.tasks import get_task, list_tasks

__all__ = ["evaluate", "get_task", "list_tasks", "get_suite", "list_suites", "TaskResult", "load_results"]
