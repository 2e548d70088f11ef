"""The plugin system: `hookimpl` for plugin authors, the manager for the core."""

from edgetl.plugin.hookspecs import hookimpl, hookspec

__all__ = ["hookimpl", "hookspec"]
