"""Tasks: one inspection each, its class names, and (later) its labels and adapters."""

from edgetl.tasks.store import Task, TaskStore

__all__ = ["Task", "TaskStore"]
