"""The plugin manager: entry points, blocking, check_pending, attribution."""

from __future__ import annotations

import types

import pytest

from edgetl.backbones import Backbone, BackboneSpec
from edgetl.backbones.registry import BackboneRegistry
from edgetl.errors import ConfigError, NotFound
from edgetl.plugin import hookimpl
from edgetl.plugin.manager import make_plugin_manager
from edgetl.settings import Settings


def _spec(name: str) -> BackboneSpec:
    return BackboneSpec(name=name, version="1", input_size=(32, 32), mean=(0, 0, 0), std=(1, 1, 1), feature_maps=("a", "b"))


def test_builtin_plugins_arrive_through_the_entry_point_group():
    pm = make_plugin_manager()
    assert {"efficientnet_lite0", "timm"} <= {name for name, _ in pm.list_name_plugin()}


def test_a_misspelled_hook_fails_loudly():
    plugin = types.ModuleType("typo_plugin")

    @hookimpl
    def edgetl_backbone(config):  # missing the trailing "s"
        return []

    plugin.edgetl_backbone = edgetl_backbone
    with pytest.raises(ConfigError, match="edgetl_backbone"):
        make_plugin_manager(extra=[("typo", plugin)])


def test_disabled_plugins_are_not_loaded(monkeypatch):
    monkeypatch.setenv("EDGETL_DISABLED_PLUGINS", "timm")
    registry = BackboneRegistry.from_settings(Settings.load(data_dir=None))
    assert registry.names() == ["efficientnet_lite0"]


def test_an_extra_plugin_contributes_backbones_with_its_own_config():
    seen = {}
    plugin = types.ModuleType("acme")

    @hookimpl
    def edgetl_backbones(config):
        seen.update(config)
        return [Backbone(spec=_spec("acme-net"), build=lambda: None)]

    plugin.edgetl_backbones = edgetl_backbones
    settings = Settings(plugins={"acme": {"colour": "red"}, "other": {"x": 1}})
    registry = BackboneRegistry.from_settings(settings, extra_plugins=[("acme", plugin)])
    assert seen == {"colour": "red"}  # only its own table
    assert registry.get("acme-net").plugin == "acme"
    assert registry.names() == sorted(registry.names())


def test_two_plugins_with_one_backbone_name_is_an_error():
    plugin = types.ModuleType("dup")

    @hookimpl
    def edgetl_backbones(config):
        return [Backbone(spec=_spec("efficientnet_lite0"), build=lambda: None)]

    plugin.edgetl_backbones = edgetl_backbones
    with pytest.raises(ConfigError, match="provided twice"):
        BackboneRegistry.from_settings(Settings(), extra_plugins=[("dup", plugin)])


def test_a_plugin_returning_the_wrong_type_is_named():
    plugin = types.ModuleType("wrong")

    @hookimpl
    def edgetl_backbones(config):
        return ["resnet"]

    plugin.edgetl_backbones = edgetl_backbones
    with pytest.raises(ConfigError, match="plugin 'wrong' returned str"):
        BackboneRegistry.from_settings(Settings(), extra_plugins=[("wrong", plugin)])


def test_unknown_backbone_lists_what_exists():
    with pytest.raises(NotFound, match="available: efficientnet_lite0"):
        BackboneRegistry.from_settings(Settings()).get("resnet50")


@pytest.mark.parametrize(
    "entry, phrase",
    [
        ({"name": "x", "model": "resnet18"}, "missing ['weights']"),
        ({"name": "x", "model": "resnet18", "weights": "random", "colour": 1}, "unknown ['colour']"),
        ({"name": "Bad Name", "model": "resnet18", "weights": "random"}, "must match"),
    ],
)
def test_timm_plugin_config_errors(entry, phrase):
    with pytest.raises(ConfigError, match=__import__("re").escape(phrase)):
        BackboneRegistry.from_settings(Settings(plugins={"timm": {"backbones": [entry]}}))


@pytest.mark.parametrize(
    "changes, phrase",
    [
        ({"feature_maps": ("only-one",)}, "at least two"),
        ({"feature_maps": ("pooled", "x")}, "may not be called"),
        ({"std": (1, 0, 1)}, "std > 0"),
        ({"color_order": "RGBA"}, "color_order"),
        ({"input_size": (4, 4)}, "input_size"),
        ({"class_names": ("a", "b")}, "go together"),
    ],
)
def test_spec_validation(changes, phrase):
    base = dict(name="ok", version="1", input_size=(32, 32), mean=(0, 0, 0), std=(1, 1, 1), feature_maps=("a", "b"))
    with pytest.raises(ConfigError, match=phrase):
        BackboneSpec(**{**base, **changes})


def _with_rogue_entry_point(monkeypatch):
    """The installed entry points plus one whose import would run foreign code (here: fail)."""
    from importlib.metadata import EntryPoint

    from edgetl.plugin import manager

    real = manager.entry_points
    rogue = EntryPoint(name="rogue", value="edgetl_no_such_module_rogue:plugin", group=manager.ENTRY_POINT_GROUP)
    monkeypatch.setattr(manager, "entry_points", lambda group: [*real(group=group), rogue])


def test_without_an_allow_list_every_installed_entry_point_is_imported(monkeypatch):
    _with_rogue_entry_point(monkeypatch)
    with pytest.raises(ConfigError, match="plugin 'rogue'.*failed to import"):
        make_plugin_manager()


def test_an_allow_list_keeps_other_installed_plugins_out(monkeypatch, caplog):
    _with_rogue_entry_point(monkeypatch)
    settings = Settings(allowed_plugins=("efficientnet_lite0",))
    registry = BackboneRegistry.from_settings(settings)  # the rogue entry point is never imported
    assert registry.names() == ["efficientnet_lite0"]
    assert "rogue" in caplog.text and "not in [security] allowed_plugins" in caplog.text


def test_an_allowed_plugin_that_is_not_installed_is_a_config_error():
    with pytest.raises(ConfigError, match="allowed_plugins names acme, which is not installed"):
        make_plugin_manager(allowed=["efficientnet_lite0", "acme"])


def test_the_allow_list_comes_from_the_security_table(tmp_path):
    (tmp_path / "edgetl.toml").write_text('[security]\nallowed_plugins = ["efficientnet_lite0"]\n')
    assert Settings.load(data_dir=tmp_path).allowed_plugins == ("efficientnet_lite0",)
