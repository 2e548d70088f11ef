"""Server settings: defaults that suit a camera line, a TOML file, CLI flags.

Precedence: CLI flags > the settings file (`--config`, or `edgetl.toml` in the
data directory) > the defaults below. Plugins read their own table under
`[plugins.<name>]`.

Example `edgetl.toml`::

    [server]
    host = "127.0.0.1"
    port = 50051

    [runtime]
    providers = ["tensorrt", "cuda", "cpu"]
    intra_op_threads = 0          # 0: ONNX Runtime picks (one per core)

    [limits]
    max_pixels = 40_000_000

    [plugins.timm]
    backbones = [{ name = "resnet18-local", model = "resnet18", weights = "/models/resnet18.safetensors" }]
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgetl.errors import ConfigError
from edgetl.server.eventloop import EVENT_LOOPS

DEFAULT_DATA_DIR = Path("edgetl-data")
DEFAULT_PORT = 50051
SETTINGS_FILE_NAME = "edgetl.toml"
PRECISIONS = ("fp32", "int8")  # of classifier adapters (edgetl.adapt.quantize)


@dataclass
class Settings:
    """Everything a server needs to start; each field is documented in README.md."""

    data_dir: Path = DEFAULT_DATA_DIR
    # -- [server]
    host: str = "127.0.0.1"  # loopback unless asked otherwise
    port: int = DEFAULT_PORT
    grace_s: float = 5.0  # how long in-flight calls may finish on SIGTERM
    max_message_bytes: int = 32 * 1024 * 1024  # a 12 MP camera PNG is ~20 MB
    metrics: bool = True  # Prometheus /metrics over HTTP
    metrics_host: str = ""  # default: the same address as the gRPC server
    metrics_port: int = 9464  # 0 picks a free one
    log_format: str = "text"  # or "json": one JSON object per line, for log shippers
    # -- [runtime]
    default_backbone: str = "efficientnet_lite0"
    providers: tuple[str, ...] = ("tensorrt", "cuda", "cpu")
    intra_op_threads: int = 0  # 0: ONNX Runtime's default
    inter_op_threads: int = 1
    worker_threads: int = 0  # decode + preprocess + backbone workers (leader/follower batching); 0: 4 on a GPU, one per core on the CPU
    # ORT's worker threads spin after a run. Under sustained load that paid
    # (BENCHMARKS.md, "Serving overhead"); at a camera's pace it slows the next
    # run and the anomaly search (BENCHMARKS.md, anomaly section). Kept on until
    # one measurement covers both.
    ort_spinning: bool = True
    max_batch: int = 0  # images the backbone takes at once when requests queue up (a worker takes this many waiting requests on a GPU, at most 2 on the CPU); 0: 8 on a GPU, 4 on the CPU
    event_loop: str = "auto"  # "auto": uvloop where installed (less time per call), "uvloop", or "asyncio" (edgetl/server/eventloop.py)
    # -- [limits]
    max_pixels: int = 40_000_000  # checked from the header, before decoding
    max_queue: int = 256  # images waiting for a backbone; past it callers get UNAVAILABLE
    # Calls open at once (a stream counts as one while it is open); past it a new
    # call gets RESOURCE_EXHAUSTED at once. 0: no limit.
    max_concurrent_rpcs: int = 64
    # -- [training]
    train_threads: int = 1  # CPU threads a training job may use; the rest stay with serving
    train_nice: int = 10  # training runs at lower CPU priority than serving
    gate_tolerance: float = 0.0  # activate a new adapter if accuracy >= active's - this
    # Classifier adapters' default precision: "fp32", or "int8" (ONNX Runtime static
    # quantization calibrated on the task's labels; about 2x faster on a VNNI CPU).
    # A job's --precision overrides it; see edgetl/adapt/quantize.py.
    precision: str = "fp32"
    # -- [security]
    tls_cert: str = ""  # server certificate (PEM); with tls_key, the server speaks TLS
    tls_key: str = ""
    client_ca: str = ""  # CA for client certificates; when set, clients must present one (mutual TLS)
    insecure: bool = False  # allow a non-loopback address without TLS or tokens
    identities: dict[str, str] = field(default_factory=dict)  # certificate CN or SAN -> role
    tokens: dict[str, Any] = field(default_factory=dict)  # sha256(token) hex -> {name, role}
    audit_log: str = ""  # default: <data_dir>/audit.jsonl
    allowed_plugins: tuple[str, ...] = ()  # when set, the only entry points that may load
    # -- [review]: the default capture policy (edgetl/review/policy.py); admins change it per task at run time
    capture: bool = True  # keep images for review at all
    capture_uncertain_score: float = 0.6  # best score below this: "uncertain"
    capture_uncertain_margin: float = 0.15  # or best minus second best below this
    capture_random_rate: float = 0.005  # 1 in 200 at random: the unbiased sample for live accuracy
    capture_per_minute: int = 30
    capture_per_hour: int = 600
    capture_per_day: int = 3000
    capture_disk_mb: float = 1024.0  # review images kept per task; oldest unreviewed go first
    capture_queue: int = 256  # images waiting to be written; past it, captures are dropped (and counted)
    # -- [drift]: drift monitoring of what each task serves (edgetl/monitor/)
    drift: bool = True
    drift_window: int = 100  # images per window; each window is tested
    drift_burn_in: int = 500  # an adapter's first images on the line: the baseline of its class mix and confidence
    drift_threshold_z: float = 4.0  # a window test past this z is an alarm (two-sided p 6e-5)
    drift_windows_to_drift: int = 3  # alarms in a row: "drifted" (one: "warning")
    drift_windows_to_clear: int = 3  # quiet windows in a row: back to "ok"
    drift_capture_rate: float = 0.05  # while drifted, this share of images goes to the review queue ("drifted")
    # -- [terminal]: the operator terminal `edgetl serve` starts beside the gRPC server
    terminal: bool = True
    terminal_host: str = ""  # default: the gRPC server's address (loopback unless configured)
    terminal_port: int = 8080  # 0 picks a free one
    terminal_tls_cert: str = ""  # HTTPS; default: the gRPC server's certificate when it has one
    terminal_tls_key: str = ""
    terminal_session_idle_s: float = 3600.0  # a signed-in session ends after this long unused
    # -- [plugins]
    plugins: dict[str, Any] = field(default_factory=dict)
    disabled_plugins: tuple[str, ...] = ()

    _SECTIONS = {
        "server": ("host", "port", "grace_s", "max_message_bytes", "metrics", "metrics_host", "metrics_port", "log_format"),
        "runtime": (
            "default_backbone",
            "providers",
            "intra_op_threads",
            "inter_op_threads",
            "worker_threads",
            "ort_spinning",
            "max_batch",
            "event_loop",
        ),
        "limits": ("max_pixels", "max_queue", "max_concurrent_rpcs"),
        "training": ("train_threads", "train_nice", "gate_tolerance", "precision"),
        "security": ("tls_cert", "tls_key", "client_ca", "insecure", "identities", "tokens", "audit_log", "allowed_plugins"),
        "review": (
            "capture",
            "capture_uncertain_score",
            "capture_uncertain_margin",
            "capture_random_rate",
            "capture_per_minute",
            "capture_per_hour",
            "capture_per_day",
            "capture_disk_mb",
            "capture_queue",
        ),
        "drift": (
            "drift",
            "drift_window",
            "drift_burn_in",
            "drift_threshold_z",
            "drift_windows_to_drift",
            "drift_windows_to_clear",
            "drift_capture_rate",
        ),
        "terminal": ("terminal", "terminal_host", "terminal_port", "terminal_tls_cert", "terminal_tls_key", "terminal_session_idle_s"),
    }

    #: Settings that take one of a few words: a typo is refused when the file is read, not at first use.
    _CHOICES = {"log_format": ("text", "json"), "precision": PRECISIONS, "event_loop": EVENT_LOOPS}

    @classmethod
    def load(cls, config: Path | None = None, data_dir: Path | None = None, **overrides: Any) -> Settings:
        """Read settings: defaults, then the file, then non-None `overrides`."""
        settings = cls()
        if data_dir is not None:
            settings.data_dir = Path(data_dir)
        elif os.environ.get("EDGETL_DATA_DIR"):
            settings.data_dir = Path(os.environ["EDGETL_DATA_DIR"])
        path = config if config is not None else settings.data_dir / SETTINGS_FILE_NAME
        if config is not None and not path.is_file():
            raise ConfigError(f"settings file {path} does not exist")
        if path.is_file():
            settings._apply_file(path)
        for key, value in overrides.items():
            if value is not None:
                settings._set(key, value, source="command line")
        disabled = os.environ.get("EDGETL_DISABLED_PLUGINS", "")
        if disabled:
            settings.disabled_plugins = tuple(
                {*settings.disabled_plugins, *(p.strip() for p in disabled.split(",") if p.strip())}
            )
        return settings

    def _apply_file(self, path: Path) -> None:
        try:
            doc = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read settings file {path}: {exc}") from exc
        for section, value in doc.items():
            if section == "plugins":
                if not isinstance(value, dict):
                    raise ConfigError(f"{path}: [plugins] must be a table")
                self.plugins = value
            elif section == "disabled_plugins":
                self.disabled_plugins = tuple(value)
            elif section in self._SECTIONS and isinstance(value, dict):
                for key, item in value.items():
                    if key not in self._SECTIONS[section]:
                        known = ", ".join(self._SECTIONS[section])
                        raise ConfigError(f"{path}: unknown setting [{section}] {key}; known: {known}")
                    self._set(key, item, source=str(path))
            else:
                known = ", ".join([*self._SECTIONS, "plugins", "disabled_plugins"])
                raise ConfigError(f"{path}: unknown section {section!r}; known: {known}")

    def _set(self, key: str, value: Any, source: str) -> None:
        fields = {f.name: f for f in dataclasses.fields(self)}
        if key not in fields:
            raise ConfigError(f"{source}: unknown setting {key!r}")
        current = getattr(self, key)
        try:
            if isinstance(current, tuple):
                value = tuple(value)
            elif isinstance(current, Path):
                value = Path(value)
            elif isinstance(current, bool):
                if not isinstance(value, bool):
                    raise TypeError(f"expected true or false, got {value!r}")
            elif not isinstance(current, (int, float, str)):
                pass
            else:
                value = type(current)(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: setting {key!r} = {value!r}: {exc}") from exc
        if key in self._CHOICES and value not in self._CHOICES[key]:
            raise ConfigError(f"{source}: setting {key!r} = {value!r}: choose one of {', '.join(self._CHOICES[key])}")
        setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe copy, handed to the export subprocess."""
        out = dataclasses.asdict(self)
        out["data_dir"] = str(self.data_dir)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        data = dict(data)
        data["data_dir"] = Path(data["data_dir"])
        for key in ("providers", "disabled_plugins", "allowed_plugins"):
            data[key] = tuple(data[key])
        return cls(**data)
