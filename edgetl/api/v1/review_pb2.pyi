from edgetl.api.v1 import inference_pb2 as _inference_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReviewAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_ACTION_UNSPECIFIED: _ClassVar[ReviewAction]
    ACCEPT: _ClassVar[ReviewAction]
    RELABEL: _ClassVar[ReviewAction]
    REJECT: _ClassVar[ReviewAction]
    SKIP: _ClassVar[ReviewAction]
REVIEW_ACTION_UNSPECIFIED: ReviewAction
ACCEPT: ReviewAction
RELABEL: ReviewAction
REJECT: ReviewAction
SKIP: ReviewAction

class ReviewItem(_message.Message):
    __slots__ = ("id", "task", "captured_at", "adapter_version", "predicted", "score", "margin", "scores", "reasons", "caller", "request_id", "state", "resolved_at", "resolved_by", "resolved_class", "label_id", "image_format", "width", "height", "image_bytes", "image", "anomaly", "anomaly_adapter_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_BY_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_CLASS_FIELD_NUMBER: _ClassVar[int]
    LABEL_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_ADAPTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: int
    task: str
    captured_at: float
    adapter_version: str
    predicted: str
    score: float
    margin: float
    scores: _containers.RepeatedScalarFieldContainer[float]
    reasons: _containers.RepeatedScalarFieldContainer[str]
    caller: str
    request_id: str
    state: str
    resolved_at: float
    resolved_by: str
    resolved_class: str
    label_id: int
    image_format: str
    width: int
    height: int
    image_bytes: int
    image: bytes
    anomaly: _inference_pb2.AnomalyResult
    anomaly_adapter_version: str
    def __init__(self, id: _Optional[int] = ..., task: _Optional[str] = ..., captured_at: _Optional[float] = ..., adapter_version: _Optional[str] = ..., predicted: _Optional[str] = ..., score: _Optional[float] = ..., margin: _Optional[float] = ..., scores: _Optional[_Iterable[float]] = ..., reasons: _Optional[_Iterable[str]] = ..., caller: _Optional[str] = ..., request_id: _Optional[str] = ..., state: _Optional[str] = ..., resolved_at: _Optional[float] = ..., resolved_by: _Optional[str] = ..., resolved_class: _Optional[str] = ..., label_id: _Optional[int] = ..., image_format: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., image_bytes: _Optional[int] = ..., image: _Optional[bytes] = ..., anomaly: _Optional[_Union[_inference_pb2.AnomalyResult, _Mapping]] = ..., anomaly_adapter_version: _Optional[str] = ...) -> None: ...

class ListReviewItemsRequest(_message.Message):
    __slots__ = ("task", "state", "reasons", "predicted", "min_score", "max_score", "order", "page_size", "page_token")
    TASK_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    MAX_SCORE_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    task: str
    state: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    predicted: str
    min_score: float
    max_score: float
    order: str
    page_size: int
    page_token: str
    def __init__(self, task: _Optional[str] = ..., state: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ..., predicted: _Optional[str] = ..., min_score: _Optional[float] = ..., max_score: _Optional[float] = ..., order: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListReviewItemsResponse(_message.Message):
    __slots__ = ("items", "next_page_token", "total")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ReviewItem]
    next_page_token: str
    total: int
    def __init__(self, items: _Optional[_Iterable[_Union[ReviewItem, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...

class GetReviewItemRequest(_message.Message):
    __slots__ = ("id", "include_image", "include_anomaly_map")
    ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ANOMALY_MAP_FIELD_NUMBER: _ClassVar[int]
    id: int
    include_image: bool
    include_anomaly_map: bool
    def __init__(self, id: _Optional[int] = ..., include_image: _Optional[bool] = ..., include_anomaly_map: _Optional[bool] = ...) -> None: ...

class ResolveReviewItemsRequest(_message.Message):
    __slots__ = ("item_ids", "action", "class_name", "operator_id", "task")
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    item_ids: _containers.RepeatedScalarFieldContainer[int]
    action: ReviewAction
    class_name: str
    operator_id: str
    task: str
    def __init__(self, item_ids: _Optional[_Iterable[int]] = ..., action: _Optional[_Union[ReviewAction, str]] = ..., class_name: _Optional[str] = ..., operator_id: _Optional[str] = ..., task: _Optional[str] = ...) -> None: ...

class ResolveResult(_message.Message):
    __slots__ = ("item_id", "ok", "error", "state", "label_id")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LABEL_ID_FIELD_NUMBER: _ClassVar[int]
    item_id: int
    ok: bool
    error: str
    state: str
    label_id: int
    def __init__(self, item_id: _Optional[int] = ..., ok: _Optional[bool] = ..., error: _Optional[str] = ..., state: _Optional[str] = ..., label_id: _Optional[int] = ...) -> None: ...

class ResolveReviewItemsResponse(_message.Message):
    __slots__ = ("results", "resolved")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ResolveResult]
    resolved: int
    def __init__(self, results: _Optional[_Iterable[_Union[ResolveResult, _Mapping]]] = ..., resolved: _Optional[int] = ...) -> None: ...

class GetReviewSummaryRequest(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: str
    def __init__(self, task: _Optional[str] = ...) -> None: ...

class TaskReviewSummary(_message.Message):
    __slots__ = ("task", "pending", "skipped", "resolved", "pending_by_reason", "stored_bytes")
    class PendingByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TASK_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    PENDING_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    STORED_BYTES_FIELD_NUMBER: _ClassVar[int]
    task: str
    pending: int
    skipped: int
    resolved: int
    pending_by_reason: _containers.ScalarMap[str, int]
    stored_bytes: int
    def __init__(self, task: _Optional[str] = ..., pending: _Optional[int] = ..., skipped: _Optional[int] = ..., resolved: _Optional[int] = ..., pending_by_reason: _Optional[_Mapping[str, int]] = ..., stored_bytes: _Optional[int] = ...) -> None: ...

class ReviewSummary(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskReviewSummary]
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskReviewSummary, _Mapping]]] = ...) -> None: ...

class GetLiveAccuracyRequest(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: str
    def __init__(self, task: _Optional[str] = ...) -> None: ...

class VersionAccuracy(_message.Message):
    __slots__ = ("adapter_version", "reviewed", "correct", "accuracy", "low", "high", "active", "first_at", "last_at")
    ADAPTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    REVIEWED_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    FIRST_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_AT_FIELD_NUMBER: _ClassVar[int]
    adapter_version: str
    reviewed: int
    correct: int
    accuracy: float
    low: float
    high: float
    active: bool
    first_at: float
    last_at: float
    def __init__(self, adapter_version: _Optional[str] = ..., reviewed: _Optional[int] = ..., correct: _Optional[int] = ..., accuracy: _Optional[float] = ..., low: _Optional[float] = ..., high: _Optional[float] = ..., active: _Optional[bool] = ..., first_at: _Optional[float] = ..., last_at: _Optional[float] = ...) -> None: ...

class LiveAccuracy(_message.Message):
    __slots__ = ("task", "versions", "confidence")
    TASK_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    task: str
    versions: _containers.RepeatedCompositeFieldContainer[VersionAccuracy]
    confidence: float
    def __init__(self, task: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[VersionAccuracy, _Mapping]]] = ..., confidence: _Optional[float] = ...) -> None: ...

class CapturePolicy(_message.Message):
    __slots__ = ("task", "enabled", "uncertain_score", "uncertain_margin", "random_rate", "per_minute", "per_hour", "per_day", "disk_bytes", "customized", "updated_at", "updated_by")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    UNCERTAIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    UNCERTAIN_MARGIN_FIELD_NUMBER: _ClassVar[int]
    RANDOM_RATE_FIELD_NUMBER: _ClassVar[int]
    PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    PER_DAY_FIELD_NUMBER: _ClassVar[int]
    DISK_BYTES_FIELD_NUMBER: _ClassVar[int]
    CUSTOMIZED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    task: str
    enabled: bool
    uncertain_score: float
    uncertain_margin: float
    random_rate: float
    per_minute: int
    per_hour: int
    per_day: int
    disk_bytes: int
    customized: bool
    updated_at: float
    updated_by: str
    def __init__(self, task: _Optional[str] = ..., enabled: _Optional[bool] = ..., uncertain_score: _Optional[float] = ..., uncertain_margin: _Optional[float] = ..., random_rate: _Optional[float] = ..., per_minute: _Optional[int] = ..., per_hour: _Optional[int] = ..., per_day: _Optional[int] = ..., disk_bytes: _Optional[int] = ..., customized: _Optional[bool] = ..., updated_at: _Optional[float] = ..., updated_by: _Optional[str] = ...) -> None: ...

class GetCapturePolicyRequest(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: str
    def __init__(self, task: _Optional[str] = ...) -> None: ...

class SetCapturePolicyRequest(_message.Message):
    __slots__ = ("task", "enabled", "uncertain_score", "uncertain_margin", "random_rate", "per_minute", "per_hour", "per_day", "disk_bytes", "reset")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    UNCERTAIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    UNCERTAIN_MARGIN_FIELD_NUMBER: _ClassVar[int]
    RANDOM_RATE_FIELD_NUMBER: _ClassVar[int]
    PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    PER_DAY_FIELD_NUMBER: _ClassVar[int]
    DISK_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    task: str
    enabled: bool
    uncertain_score: float
    uncertain_margin: float
    random_rate: float
    per_minute: int
    per_hour: int
    per_day: int
    disk_bytes: int
    reset: bool
    def __init__(self, task: _Optional[str] = ..., enabled: _Optional[bool] = ..., uncertain_score: _Optional[float] = ..., uncertain_margin: _Optional[float] = ..., random_rate: _Optional[float] = ..., per_minute: _Optional[int] = ..., per_hour: _Optional[int] = ..., per_day: _Optional[int] = ..., disk_bytes: _Optional[int] = ..., reset: _Optional[bool] = ...) -> None: ...
