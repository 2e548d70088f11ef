from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeatureOutput(_message.Message):
    __slots__ = ("name", "shape")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class Backbone(_message.Message):
    __slots__ = ("name", "version", "plugin", "input_height", "input_width", "color_order", "mean", "std", "outputs", "lora_targets", "loaded", "export_id", "onnx_sha256", "providers", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    INPUT_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    INPUT_WIDTH_FIELD_NUMBER: _ClassVar[int]
    COLOR_ORDER_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    LORA_TARGETS_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    EXPORT_ID_FIELD_NUMBER: _ClassVar[int]
    ONNX_SHA256_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    plugin: str
    input_height: int
    input_width: int
    color_order: str
    mean: _containers.RepeatedScalarFieldContainer[float]
    std: _containers.RepeatedScalarFieldContainer[float]
    outputs: _containers.RepeatedCompositeFieldContainer[FeatureOutput]
    lora_targets: _containers.RepeatedScalarFieldContainer[str]
    loaded: bool
    export_id: str
    onnx_sha256: str
    providers: _containers.RepeatedScalarFieldContainer[str]
    description: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., plugin: _Optional[str] = ..., input_height: _Optional[int] = ..., input_width: _Optional[int] = ..., color_order: _Optional[str] = ..., mean: _Optional[_Iterable[float]] = ..., std: _Optional[_Iterable[float]] = ..., outputs: _Optional[_Iterable[_Union[FeatureOutput, _Mapping]]] = ..., lora_targets: _Optional[_Iterable[str]] = ..., loaded: _Optional[bool] = ..., export_id: _Optional[str] = ..., onnx_sha256: _Optional[str] = ..., providers: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ...) -> None: ...

class ListBackbonesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListBackbonesResponse(_message.Message):
    __slots__ = ("backbones",)
    BACKBONES_FIELD_NUMBER: _ClassVar[int]
    backbones: _containers.RepeatedCompositeFieldContainer[Backbone]
    def __init__(self, backbones: _Optional[_Iterable[_Union[Backbone, _Mapping]]] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("name", "backbone", "class_names", "active_adapter_version", "builtin", "drift", "kind")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BACKBONE_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_ADAPTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    BUILTIN_FIELD_NUMBER: _ClassVar[int]
    DRIFT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    name: str
    backbone: str
    class_names: _containers.RepeatedScalarFieldContainer[str]
    active_adapter_version: str
    builtin: bool
    drift: DriftStatus
    kind: str
    def __init__(self, name: _Optional[str] = ..., backbone: _Optional[str] = ..., class_names: _Optional[_Iterable[str]] = ..., active_adapter_version: _Optional[str] = ..., builtin: _Optional[bool] = ..., drift: _Optional[_Union[DriftStatus, _Mapping]] = ..., kind: _Optional[str] = ...) -> None: ...

class DriftStatus(_message.Message):
    __slots__ = ("state", "since", "test", "statistic", "threshold", "images", "window", "adapter_version", "has_reference", "burn_in_left", "last", "message")
    class LastEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STATE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    HAS_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    BURN_IN_LEFT_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    state: str
    since: float
    test: str
    statistic: float
    threshold: float
    images: int
    window: int
    adapter_version: str
    has_reference: bool
    burn_in_left: int
    last: _containers.ScalarMap[str, float]
    message: str
    def __init__(self, state: _Optional[str] = ..., since: _Optional[float] = ..., test: _Optional[str] = ..., statistic: _Optional[float] = ..., threshold: _Optional[float] = ..., images: _Optional[int] = ..., window: _Optional[int] = ..., adapter_version: _Optional[str] = ..., has_reference: _Optional[bool] = ..., burn_in_left: _Optional[int] = ..., last: _Optional[_Mapping[str, float]] = ..., message: _Optional[str] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CreateTaskRequest(_message.Message):
    __slots__ = ("name", "class_names", "backbone", "kind")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    BACKBONE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    name: str
    class_names: _containers.RepeatedScalarFieldContainer[str]
    backbone: str
    kind: str
    def __init__(self, name: _Optional[str] = ..., class_names: _Optional[_Iterable[str]] = ..., backbone: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class AddClassRequest(_message.Message):
    __slots__ = ("task", "class_name")
    TASK_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    task: str
    class_name: str
    def __init__(self, task: _Optional[str] = ..., class_name: _Optional[str] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Caller(_message.Message):
    __slots__ = ("name", "role", "security")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SECURITY_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    security: bool
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., security: _Optional[bool] = ...) -> None: ...

class GetServerStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TaskStats(_message.Message):
    __slots__ = ("task", "images_total", "failures_total", "images_per_second", "p50_ms", "p95_ms", "images_in_window")
    TASK_FIELD_NUMBER: _ClassVar[int]
    IMAGES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    FAILURES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    IMAGES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P95_MS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_IN_WINDOW_FIELD_NUMBER: _ClassVar[int]
    task: str
    images_total: int
    failures_total: int
    images_per_second: float
    p50_ms: float
    p95_ms: float
    images_in_window: int
    def __init__(self, task: _Optional[str] = ..., images_total: _Optional[int] = ..., failures_total: _Optional[int] = ..., images_per_second: _Optional[float] = ..., p50_ms: _Optional[float] = ..., p95_ms: _Optional[float] = ..., images_in_window: _Optional[int] = ...) -> None: ...

class ServerStats(_message.Message):
    __slots__ = ("uptime_s", "window_s", "tasks", "version")
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    uptime_s: float
    window_s: float
    tasks: _containers.RepeatedCompositeFieldContainer[TaskStats]
    version: str
    def __init__(self, uptime_s: _Optional[float] = ..., window_s: _Optional[float] = ..., tasks: _Optional[_Iterable[_Union[TaskStats, _Mapping]]] = ..., version: _Optional[str] = ...) -> None: ...
