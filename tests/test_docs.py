"""The plugin authors' guide documents every hook, with every argument (as datasette does)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pluggy

from edgetl.plugin import hookspecs

README = Path(__file__).resolve().parents[1] / "README.md"


def all_hooks():
    marker = f"{hookspecs.PROJECT}_spec"
    return {name: fn for name, fn in vars(hookspecs).items() if callable(fn) and hasattr(fn, marker)}


def test_there_are_hooks():
    assert "edgetl_backbones" in all_hooks()


def test_every_hook_is_documented_with_its_arguments():
    text = README.read_text()
    for name, fn in all_hooks().items():
        params = ", ".join(inspect.signature(fn).parameters)
        heading = f"### `{name}({params})`"
        assert heading in text, f"README.md's plugin authors' guide lacks the heading {heading}"
        assert fn.__doc__ and fn.__doc__.strip(), f"{name} has no docstring"


def test_every_documented_hook_exists():
    import re

    documented = set(re.findall(r"^### `(edgetl_\w+)\(", README.read_text(), flags=re.M))
    assert documented == set(all_hooks()), "README documents hooks that do not exist, or misses some"
    assert isinstance(pluggy.HookspecMarker(hookspecs.PROJECT), pluggy.HookspecMarker)
