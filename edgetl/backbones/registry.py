"""The backbone registry: every backbone the installed plugins provide, by name."""

from __future__ import annotations

from typing import Iterable

from edgetl.backbones.spec import Backbone
from edgetl.errors import ConfigError, NotFound
from edgetl.plugin.manager import make_plugin_manager
from edgetl.settings import Settings


class BackboneRegistry:
    """Backbones by name, sorted; an unknown name raises an error that lists what exists."""

    def __init__(self, backbones: Iterable[Backbone]):
        self._backbones: dict[str, Backbone] = {}
        for backbone in backbones:
            if backbone.name in self._backbones:
                other = self._backbones[backbone.name].plugin
                raise ConfigError(
                    f"backbone {backbone.name!r} is provided twice (plugins {other!r} and "
                    f"{backbone.plugin!r}); disable one with EDGETL_DISABLED_PLUGINS"
                )
            self._backbones[backbone.name] = backbone

    @classmethod
    def from_settings(cls, settings: Settings, extra_plugins: Iterable[tuple[str, object]] = ()) -> "BackboneRegistry":
        """Ask every plugin for its backbones, passing each its own settings table."""
        pm = make_plugin_manager(settings.disabled_plugins, extra_plugins, settings.allowed_plugins)
        found: list[Backbone] = []
        # One call per implementation, so each backbone is attributed to its plugin
        # and each plugin gets only its own [plugins.<name>] table.
        for impl in pm.hook.edgetl_backbones.get_hookimpls():
            config = settings.plugins.get(impl.plugin_name, {})
            result = impl.function(config=config) or []
            for backbone in result:
                if not isinstance(backbone, Backbone):
                    raise ConfigError(
                        f"plugin {impl.plugin_name!r} returned {type(backbone).__name__}, "
                        "expected edgetl.backbones.Backbone"
                    )
                found.append(Backbone(backbone.spec, backbone.build, backbone.weights, impl.plugin_name))
        return cls(found)

    def names(self) -> list[str]:
        return sorted(self._backbones)

    def __iter__(self):
        return iter(self._backbones[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._backbones)

    def get(self, name: str) -> Backbone:
        try:
            return self._backbones[name]
        except KeyError:
            known = ", ".join(self.names()) or "none (is a backbone plugin installed?)"
            raise NotFound(f"unknown backbone {name!r}; available: {known}") from None
