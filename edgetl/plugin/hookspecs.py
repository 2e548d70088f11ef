"""Every extension point of edgetl, in one place.

Plugin authors implement these with ``@edgetl.plugin.hookimpl`` in a module
named by an entry point in the ``edgetl`` group. Each hook is documented in
README.md ("Plugin authors' guide"); a test fails when one is not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from edgetl.backbones.spec import Backbone

PROJECT = "edgetl"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def edgetl_backbones(config: Mapping[str, Any]) -> list["Backbone"]:
    """Return the backbones this plugin provides.

    Called once per process (server, export, training) with ``config``, the
    plugin's own table from the settings file, ``[plugins.<entry point name>]``
    (empty when absent). Must be cheap and must not import torch: return
    :class:`edgetl.backbones.Backbone` objects whose ``build`` does the heavy
    work later, in the export or training process. Raise
    :class:`edgetl.errors.ConfigError` for a bad ``config``.
    """
