"""Settings: defaults, the TOML file, flags, and clear errors."""

from __future__ import annotations

import pytest

from edgetl.errors import ConfigError
from edgetl.settings import Settings


def test_defaults_suit_a_camera_line():
    s = Settings()
    assert (s.host, s.port) == ("127.0.0.1", 50051)  # loopback unless asked
    assert s.providers == ("tensorrt", "cuda", "cpu") and s.default_backbone == "efficientnet_lite0"


def test_file_then_flags(tmp_path):
    (tmp_path / "edgetl.toml").write_text(
        '[server]\nport = 6000\nhost = "0.0.0.0"\n[runtime]\nproviders = ["cpu"]\n[limits]\nmax_pixels = 1000\n'
        '[plugins.timm]\nbackbones = []\n'
    )
    s = Settings.load(data_dir=tmp_path, port=7000)
    assert (s.host, s.port, s.providers, s.max_pixels) == ("0.0.0.0", 7000, ("cpu",), 1000)
    assert s.plugins == {"timm": {"backbones": []}}
    assert Settings.from_dict(s.to_dict()) == s


@pytest.mark.parametrize(
    "text, phrase",
    [
        ("[server]\nprot = 1\n", "unknown setting [server] prot"),
        ("[srv]\n", "unknown section 'srv'"),
        ("[server]\nport = 'abc'\n", "setting 'port'"),
        ("[server\n", "cannot read settings file"),
        ("[training]\nprecision = 'fp16'\n", "setting 'precision' = 'fp16': choose one of fp32, int8"),
        ("[server]\nlog_format = 'xml'\n", "setting 'log_format' = 'xml': choose one of text, json"),
        ("[runtime]\nevent_loop = 'trio'\n", "setting 'event_loop' = 'trio': choose one of auto, uvloop, asyncio"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path, text, phrase):
    path = tmp_path / "edgetl.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=phrase.replace("[", r"\[")):
        Settings.load(path)


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(tmp_path / "nope.toml")


def test_disabled_plugins_from_the_environment(monkeypatch):
    monkeypatch.setenv("EDGETL_DISABLED_PLUGINS", "timm, acme")
    assert set(Settings.load().disabled_plugins) == {"timm", "acme"}
