"""Exports of a task for other serving engines (Triton)."""
