from edgetl.api.v1 import image_pb2 as _image_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClassifyRequest(_message.Message):
    __slots__ = ("task", "image", "top_k", "request_id", "flag_for_review", "anomaly_map")
    TASK_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FLAG_FOR_REVIEW_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_MAP_FIELD_NUMBER: _ClassVar[int]
    task: str
    image: _image_pb2.Image
    top_k: int
    request_id: str
    flag_for_review: bool
    anomaly_map: bool
    def __init__(self, task: _Optional[str] = ..., image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., top_k: _Optional[int] = ..., request_id: _Optional[str] = ..., flag_for_review: _Optional[bool] = ..., anomaly_map: _Optional[bool] = ...) -> None: ...

class ClassScore(_message.Message):
    __slots__ = ("label", "score")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class Timing(_message.Message):
    __slots__ = ("decode_ms", "queue_ms", "inference_ms", "total_ms")
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    decode_ms: float
    queue_ms: float
    inference_ms: float
    total_ms: float
    def __init__(self, decode_ms: _Optional[float] = ..., queue_ms: _Optional[float] = ..., inference_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("task", "label", "score", "scores", "top_classes", "adapter_version", "timing", "request_id", "error", "anomaly")
    TASK_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    TOP_CLASSES_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_FIELD_NUMBER: _ClassVar[int]
    task: str
    label: str
    score: float
    scores: _containers.RepeatedScalarFieldContainer[float]
    top_classes: _containers.RepeatedCompositeFieldContainer[ClassScore]
    adapter_version: str
    timing: Timing
    request_id: str
    error: Error
    anomaly: AnomalyResult
    def __init__(self, task: _Optional[str] = ..., label: _Optional[str] = ..., score: _Optional[float] = ..., scores: _Optional[_Iterable[float]] = ..., top_classes: _Optional[_Iterable[_Union[ClassScore, _Mapping]]] = ..., adapter_version: _Optional[str] = ..., timing: _Optional[_Union[Timing, _Mapping]] = ..., request_id: _Optional[str] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., anomaly: _Optional[_Union[AnomalyResult, _Mapping]] = ...) -> None: ...

class AnomalyResult(_message.Message):
    __slots__ = ("score", "threshold", "anomalous", "map", "map_height", "map_width", "map_png")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ANOMALOUS_FIELD_NUMBER: _ClassVar[int]
    MAP_FIELD_NUMBER: _ClassVar[int]
    MAP_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MAP_WIDTH_FIELD_NUMBER: _ClassVar[int]
    MAP_PNG_FIELD_NUMBER: _ClassVar[int]
    score: float
    threshold: float
    anomalous: bool
    map: _containers.RepeatedScalarFieldContainer[float]
    map_height: int
    map_width: int
    map_png: bytes
    def __init__(self, score: _Optional[float] = ..., threshold: _Optional[float] = ..., anomalous: _Optional[bool] = ..., map: _Optional[_Iterable[float]] = ..., map_height: _Optional[int] = ..., map_width: _Optional[int] = ..., map_png: _Optional[bytes] = ...) -> None: ...

class ClassifyTasksRequest(_message.Message):
    __slots__ = ("tasks", "image", "top_k", "request_id", "flag_for_review", "anomaly_map")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FLAG_FOR_REVIEW_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_MAP_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedScalarFieldContainer[str]
    image: _image_pb2.Image
    top_k: int
    request_id: str
    flag_for_review: bool
    anomaly_map: bool
    def __init__(self, tasks: _Optional[_Iterable[str]] = ..., image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., top_k: _Optional[int] = ..., request_id: _Optional[str] = ..., flag_for_review: _Optional[bool] = ..., anomaly_map: _Optional[bool] = ...) -> None: ...

class ClassifyTasksResponse(_message.Message):
    __slots__ = ("answers", "request_id", "backbone_runs", "total_ms")
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BACKBONE_RUNS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[ClassifyResponse]
    request_id: str
    backbone_runs: int
    total_ms: float
    def __init__(self, answers: _Optional[_Iterable[_Union[ClassifyResponse, _Mapping]]] = ..., request_id: _Optional[str] = ..., backbone_runs: _Optional[int] = ..., total_ms: _Optional[float] = ...) -> None: ...
