"""Load plugins: entry points in the `edgetl` group, minus blocked ones, checked.

The core never imports a plugin module directly (DESIGN.md decision 5); the
built-in backbones arrive through the same entry-point group as anyone's.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Iterable

import pluggy

from edgetl.errors import ConfigError
from edgetl.plugin import hookspecs

ENTRY_POINT_GROUP = "edgetl"
log = logging.getLogger(__name__)


def make_plugin_manager(
    disabled: Iterable[str] = (), extra: Iterable[tuple[str, object]] = (), allowed: Iterable[str] = ()
) -> pluggy.PluginManager:
    """A manager with every installed plugin registered, then checked.

    Args:
        disabled: entry-point names to skip (settings ``disabled_plugins`` or
            the ``EDGETL_DISABLED_PLUGINS`` environment variable).
        extra: (name, module-or-object) pairs registered after the entry
            points; tests use this to add a plugin without installing it.

    Raises:
        ConfigError: a plugin failed to import, implements a hook that does
            not exist (``check_pending``: usually a misspelled hook name), or
            is allowed but not installed.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    blocked = set(disabled)
    allow = set(allowed)
    extra = list(extra)
    installed = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    if allow:
        missing = allow - {ep.name for ep in installed} - {name for name, _ in extra}
        if missing:
            raise ConfigError(
                f"[security] allowed_plugins names {', '.join(sorted(missing))}, which is not installed "
                f"(installed: {', '.join(ep.name for ep in installed)})"
            )
        for ep in installed:
            if ep.name not in allow and ep.name not in blocked:
                log.warning("plugin %s (%s) is installed but not in [security] allowed_plugins; not loaded", ep.name, ep.value)
        blocked |= {ep.name for ep in installed} - allow
        blocked |= {name for name, _ in extra} - allow
    for name in sorted(blocked):
        pm.set_blocked(name)
    for ep in installed:
        if ep.name in blocked or pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not be a mystery
            raise ConfigError(
                f"plugin {ep.name!r} ({ep.value}) failed to import: {exc}; "
                f"fix or uninstall it, or disable it with EDGETL_DISABLED_PLUGINS={ep.name}"
            ) from exc
        pm.register(plugin, name=ep.name)
    for name, plugin in extra:
        if name not in blocked:
            pm.register(plugin, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError(f"plugin {exc.plugin!r}: {exc}") from exc
    log.debug("plugins: %s", ", ".join(n for n, _ in pm.list_name_plugin()))
    return pm
