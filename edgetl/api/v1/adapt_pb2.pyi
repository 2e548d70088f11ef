from edgetl.api.v1 import image_pb2 as _image_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AddLabelRequest(_message.Message):
    __slots__ = ("task", "image", "class_name", "operator_id", "corrects_prediction")
    TASK_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    CORRECTS_PREDICTION_FIELD_NUMBER: _ClassVar[int]
    task: str
    image: _image_pb2.Image
    class_name: str
    operator_id: str
    corrects_prediction: str
    def __init__(self, task: _Optional[str] = ..., image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., class_name: _Optional[str] = ..., operator_id: _Optional[str] = ..., corrects_prediction: _Optional[str] = ...) -> None: ...

class AddLabelResponse(_message.Message):
    __slots__ = ("image_sha256", "label_id", "new_image", "relabelled", "unchanged", "split", "counts")
    IMAGE_SHA256_FIELD_NUMBER: _ClassVar[int]
    LABEL_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_IMAGE_FIELD_NUMBER: _ClassVar[int]
    RELABELLED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    image_sha256: str
    label_id: int
    new_image: bool
    relabelled: bool
    unchanged: bool
    split: str
    counts: LabelCounts
    def __init__(self, image_sha256: _Optional[str] = ..., label_id: _Optional[int] = ..., new_image: _Optional[bool] = ..., relabelled: _Optional[bool] = ..., unchanged: _Optional[bool] = ..., split: _Optional[str] = ..., counts: _Optional[_Union[LabelCounts, _Mapping]] = ...) -> None: ...

class GetLabelCountsRequest(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: str
    def __init__(self, task: _Optional[str] = ...) -> None: ...

class LabelCounts(_message.Message):
    __slots__ = ("task", "per_class", "total", "train", "val", "classes")
    class PerClassEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TASK_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    VAL_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    task: str
    per_class: _containers.ScalarMap[str, int]
    total: int
    train: int
    val: int
    classes: _containers.RepeatedCompositeFieldContainer[ClassCount]
    def __init__(self, task: _Optional[str] = ..., per_class: _Optional[_Mapping[str, int]] = ..., total: _Optional[int] = ..., train: _Optional[int] = ..., val: _Optional[int] = ..., classes: _Optional[_Iterable[_Union[ClassCount, _Mapping]]] = ...) -> None: ...

class ClassCount(_message.Message):
    __slots__ = ("class_name", "train", "val")
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    VAL_FIELD_NUMBER: _ClassVar[int]
    class_name: str
    train: int
    val: int
    def __init__(self, class_name: _Optional[str] = ..., train: _Optional[int] = ..., val: _Optional[int] = ...) -> None: ...

class TrainingOptions(_message.Message):
    __slots__ = ("epochs", "rank", "learning_rate", "head_learning_rate", "batch_size", "patience", "augment", "weight_decay", "seed", "refit_epochs", "time_budget_s", "views", "max_patches", "false_alarm_rate", "precision", "pooling", "good_class", "serve_views", "lora_min_stride")
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    HEAD_LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    PATIENCE_FIELD_NUMBER: _ClassVar[int]
    AUGMENT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    REFIT_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    TIME_BUDGET_S_FIELD_NUMBER: _ClassVar[int]
    VIEWS_FIELD_NUMBER: _ClassVar[int]
    MAX_PATCHES_FIELD_NUMBER: _ClassVar[int]
    FALSE_ALARM_RATE_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    POOLING_FIELD_NUMBER: _ClassVar[int]
    GOOD_CLASS_FIELD_NUMBER: _ClassVar[int]
    SERVE_VIEWS_FIELD_NUMBER: _ClassVar[int]
    LORA_MIN_STRIDE_FIELD_NUMBER: _ClassVar[int]
    epochs: int
    rank: int
    learning_rate: float
    head_learning_rate: float
    batch_size: int
    patience: int
    augment: bool
    weight_decay: float
    seed: int
    refit_epochs: int
    time_budget_s: int
    views: int
    max_patches: int
    false_alarm_rate: float
    precision: str
    pooling: str
    good_class: str
    serve_views: int
    lora_min_stride: int
    def __init__(self, epochs: _Optional[int] = ..., rank: _Optional[int] = ..., learning_rate: _Optional[float] = ..., head_learning_rate: _Optional[float] = ..., batch_size: _Optional[int] = ..., patience: _Optional[int] = ..., augment: _Optional[bool] = ..., weight_decay: _Optional[float] = ..., seed: _Optional[int] = ..., refit_epochs: _Optional[int] = ..., time_budget_s: _Optional[int] = ..., views: _Optional[int] = ..., max_patches: _Optional[int] = ..., false_alarm_rate: _Optional[float] = ..., precision: _Optional[str] = ..., pooling: _Optional[str] = ..., good_class: _Optional[str] = ..., serve_views: _Optional[int] = ..., lora_min_stride: _Optional[int] = ...) -> None: ...

class StartTrainingRequest(_message.Message):
    __slots__ = ("task", "method", "options", "force", "compare_scratch")
    TASK_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    COMPARE_SCRATCH_FIELD_NUMBER: _ClassVar[int]
    task: str
    method: str
    options: TrainingOptions
    force: bool
    compare_scratch: bool
    def __init__(self, task: _Optional[str] = ..., method: _Optional[str] = ..., options: _Optional[_Union[TrainingOptions, _Mapping]] = ..., force: _Optional[bool] = ..., compare_scratch: _Optional[bool] = ...) -> None: ...

class ClassMetrics(_message.Message):
    __slots__ = ("label", "precision", "recall", "support")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    label: str
    precision: float
    recall: float
    support: int
    def __init__(self, label: _Optional[str] = ..., precision: _Optional[float] = ..., recall: _Optional[float] = ..., support: _Optional[int] = ...) -> None: ...

class Metrics(_message.Message):
    __slots__ = ("accuracy", "n", "per_class", "confusion")
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    CONFUSION_FIELD_NUMBER: _ClassVar[int]
    accuracy: float
    n: int
    per_class: _containers.RepeatedCompositeFieldContainer[ClassMetrics]
    confusion: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, accuracy: _Optional[float] = ..., n: _Optional[int] = ..., per_class: _Optional[_Iterable[_Union[ClassMetrics, _Mapping]]] = ..., confusion: _Optional[_Iterable[int]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "task", "method", "state", "error", "version", "activated", "gate", "metrics", "active_metrics", "scratch_metrics", "created_at", "finished_at", "options_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVATED_FIELD_NUMBER: _ClassVar[int]
    GATE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_METRICS_FIELD_NUMBER: _ClassVar[int]
    SCRATCH_METRICS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    task: str
    method: str
    state: str
    error: str
    version: str
    activated: bool
    gate: str
    metrics: Metrics
    active_metrics: Metrics
    scratch_metrics: Metrics
    created_at: float
    finished_at: float
    options_json: str
    def __init__(self, id: _Optional[str] = ..., task: _Optional[str] = ..., method: _Optional[str] = ..., state: _Optional[str] = ..., error: _Optional[str] = ..., version: _Optional[str] = ..., activated: _Optional[bool] = ..., gate: _Optional[str] = ..., metrics: _Optional[_Union[Metrics, _Mapping]] = ..., active_metrics: _Optional[_Union[Metrics, _Mapping]] = ..., scratch_metrics: _Optional[_Union[Metrics, _Mapping]] = ..., created_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., options_json: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job_id", "phase", "epoch", "epochs", "loss", "val_accuracy", "elapsed_s", "eta_s", "message", "job")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    VAL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_S_FIELD_NUMBER: _ClassVar[int]
    ETA_S_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    phase: str
    epoch: int
    epochs: int
    loss: float
    val_accuracy: float
    elapsed_s: float
    eta_s: float
    message: str
    job: Job
    def __init__(self, job_id: _Optional[str] = ..., phase: _Optional[str] = ..., epoch: _Optional[int] = ..., epochs: _Optional[int] = ..., loss: _Optional[float] = ..., val_accuracy: _Optional[float] = ..., elapsed_s: _Optional[float] = ..., eta_s: _Optional[float] = ..., message: _Optional[str] = ..., job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: str
    def __init__(self, task: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class SetAnomalyThresholdRequest(_message.Message):
    __slots__ = ("task", "false_alarm_rate", "threshold", "operator_id")
    TASK_FIELD_NUMBER: _ClassVar[int]
    FALSE_ALARM_RATE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    task: str
    false_alarm_rate: float
    threshold: float
    operator_id: str
    def __init__(self, task: _Optional[str] = ..., false_alarm_rate: _Optional[float] = ..., threshold: _Optional[float] = ..., operator_id: _Optional[str] = ...) -> None: ...

class SetAnomalyThresholdResponse(_message.Message):
    __slots__ = ("version", "parent_version", "threshold", "previous_threshold", "false_alarm_rate", "guaranteed_false_alarm_rate", "good_images", "good_images_above")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PARENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FALSE_ALARM_RATE_FIELD_NUMBER: _ClassVar[int]
    GUARANTEED_FALSE_ALARM_RATE_FIELD_NUMBER: _ClassVar[int]
    GOOD_IMAGES_FIELD_NUMBER: _ClassVar[int]
    GOOD_IMAGES_ABOVE_FIELD_NUMBER: _ClassVar[int]
    version: str
    parent_version: str
    threshold: float
    previous_threshold: float
    false_alarm_rate: float
    guaranteed_false_alarm_rate: float
    good_images: int
    good_images_above: int
    def __init__(self, version: _Optional[str] = ..., parent_version: _Optional[str] = ..., threshold: _Optional[float] = ..., previous_threshold: _Optional[float] = ..., false_alarm_rate: _Optional[float] = ..., guaranteed_false_alarm_rate: _Optional[float] = ..., good_images: _Optional[int] = ..., good_images_above: _Optional[int] = ...) -> None: ...

class EnrollGoodRequest(_message.Message):
    __slots__ = ("task", "image", "operator_id")
    TASK_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_ID_FIELD_NUMBER: _ClassVar[int]
    task: str
    image: _image_pb2.Image
    operator_id: str
    def __init__(self, task: _Optional[str] = ..., image: _Optional[_Union[_image_pb2.Image, _Mapping]] = ..., operator_id: _Optional[str] = ...) -> None: ...

class EnrollGoodResponse(_message.Message):
    __slots__ = ("version", "parent_version", "score", "threshold", "previous_threshold", "patches_added", "bank_patches", "image_sha256", "elapsed_ms")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PARENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PATCHES_ADDED_FIELD_NUMBER: _ClassVar[int]
    BANK_PATCHES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SHA256_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    version: str
    parent_version: str
    score: float
    threshold: float
    previous_threshold: float
    patches_added: int
    bank_patches: int
    image_sha256: str
    elapsed_ms: float
    def __init__(self, version: _Optional[str] = ..., parent_version: _Optional[str] = ..., score: _Optional[float] = ..., threshold: _Optional[float] = ..., previous_threshold: _Optional[float] = ..., patches_added: _Optional[int] = ..., bank_patches: _Optional[int] = ..., image_sha256: _Optional[str] = ..., elapsed_ms: _Optional[float] = ...) -> None: ...

class Adapter(_message.Message):
    __slots__ = ("task", "version", "method", "state", "metrics", "options_json", "backbone", "export_id", "created_at", "label_count", "label_snapshot", "scratch_metrics")
    TASK_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    BACKBONE_FIELD_NUMBER: _ClassVar[int]
    EXPORT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LABEL_COUNT_FIELD_NUMBER: _ClassVar[int]
    LABEL_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    SCRATCH_METRICS_FIELD_NUMBER: _ClassVar[int]
    task: str
    version: str
    method: str
    state: str
    metrics: Metrics
    options_json: str
    backbone: str
    export_id: str
    created_at: float
    label_count: int
    label_snapshot: str
    scratch_metrics: Metrics
    def __init__(self, task: _Optional[str] = ..., version: _Optional[str] = ..., method: _Optional[str] = ..., state: _Optional[str] = ..., metrics: _Optional[_Union[Metrics, _Mapping]] = ..., options_json: _Optional[str] = ..., backbone: _Optional[str] = ..., export_id: _Optional[str] = ..., created_at: _Optional[float] = ..., label_count: _Optional[int] = ..., label_snapshot: _Optional[str] = ..., scratch_metrics: _Optional[_Union[Metrics, _Mapping]] = ...) -> None: ...

class ListAdaptersRequest(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: str
    def __init__(self, task: _Optional[str] = ...) -> None: ...

class ListAdaptersResponse(_message.Message):
    __slots__ = ("adapters", "active_version")
    ADAPTERS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    adapters: _containers.RepeatedCompositeFieldContainer[Adapter]
    active_version: str
    def __init__(self, adapters: _Optional[_Iterable[_Union[Adapter, _Mapping]]] = ..., active_version: _Optional[str] = ...) -> None: ...

class ActivateAdapterRequest(_message.Message):
    __slots__ = ("task", "version")
    TASK_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    task: str
    version: str
    def __init__(self, task: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: str
    def __init__(self, task: _Optional[str] = ...) -> None: ...
