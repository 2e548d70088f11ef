"""The label store: operator labels in SQLite, their images content-addressed on disk.

An image is stored once, at ``images/<sha256[:2]>/<sha256>.<ext>``, written
crash-safe *before* its row, so a row never points at a missing file. The
current label of an image in a task is its latest row; older rows stay as
history. Which split an image belongs to is decided by its hash alone, so
the validation set never moves when labels are added.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edgetl.db import connect
from edgetl.errors import InvalidInput
from edgetl.fsutil import write_bytes_atomic
from edgetl.runtime.preprocess import EncodedImage, decode
from edgetl.runtime.imageheader import read_header

#: Percentage of images (by hash) held out for validation.
VAL_PERCENT = 20

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    sha256     TEXT PRIMARY KEY,
    format     TEXT NOT NULL,
    width      INTEGER NOT NULL,
    height     INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS labels (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    task         TEXT NOT NULL,
    image_sha256 TEXT NOT NULL REFERENCES images(sha256),
    class_name   TEXT NOT NULL,
    operator     TEXT NOT NULL DEFAULT '',
    corrects     TEXT NOT NULL DEFAULT '',   -- the prediction this label corrects
    created_at   REAL NOT NULL,
    current      INTEGER NOT NULL DEFAULT 1  -- 0 once relabelled
);
CREATE INDEX IF NOT EXISTS labels_current ON labels(task, current, image_sha256);
"""

_EXT = {"png": "png", "jpeg": "jpg", "bmp": "bmp"}


def split_of(sha256: str) -> str:
    """'val' for about VAL_PERCENT % of images, fixed by the hash; else 'train'."""
    return "val" if int(sha256[:8], 16) % 100 < VAL_PERCENT else "train"


@dataclass(frozen=True)
class Label:
    id: int
    image_sha256: str
    class_name: str
    path: Path

    @property
    def split(self) -> str:
        return split_of(self.image_sha256)


@dataclass(frozen=True)
class AddResult:
    image_sha256: str
    label_id: int
    new_image: bool
    relabelled: bool
    unchanged: bool


class LabelStore:
    def __init__(self, data_dir: Path, db_path: Path, readonly: bool = False):
        self.images_dir = Path(data_dir) / "images"
        self._db = connect(db_path, readonly=readonly)
        self._lock = threading.Lock()
        if not readonly:
            with self._lock:
                self._db.executescript(SCHEMA)

    def image_path(self, sha256: str, fmt: str) -> Path:
        return self.images_dir / sha256[:2] / f"{sha256}.{_EXT[fmt]}"

    def add(self, task: str, class_names: tuple[str, ...], data: bytes, class_name: str, operator: str = "", corrects: str = "", max_pixels: int = 40_000_000) -> AddResult:
        """Validate, store the image, record the label. Nothing is written on error."""
        if class_name not in class_names:
            raise InvalidInput(f"task {task!r} has no class {class_name!r}; its classes are {list(class_names)}")
        header = read_header(data)  # InvalidInput for empty / unsupported
        decode(EncodedImage(data), max_pixels)  # the whole image must decode
        sha = hashlib.sha256(data).hexdigest()
        path = self.image_path(sha, header.format)
        new_image = False
        if not path.is_file():
            write_bytes_atomic(path, data)
            new_image = True
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR IGNORE INTO images (sha256, format, width, height, size, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (sha, header.format, header.width, header.height, len(data), now),
                )
                row = self._db.execute(
                    "SELECT id, class_name FROM labels WHERE task = ? AND image_sha256 = ? AND current = 1", (task, sha)
                ).fetchone()
                if row and row[1] == class_name:
                    self._db.execute("COMMIT")
                    return AddResult(sha, row[0], new_image, relabelled=False, unchanged=True)
                if row:
                    self._db.execute("UPDATE labels SET current = 0 WHERE id = ?", (row[0],))
                label_id = self._db.execute(
                    "INSERT INTO labels (task, image_sha256, class_name, operator, corrects, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (task, sha, class_name, operator, corrects, now),
                ).lastrowid
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return AddResult(sha, label_id, new_image, relabelled=row is not None, unchanged=False)

    def current(self, task: str) -> list[Label]:
        """The current label of every image in `task`, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT l.id, l.image_sha256, l.class_name, i.format FROM labels l JOIN images i ON i.sha256 = l.image_sha256 "
                "WHERE l.task = ? AND l.current = 1 ORDER BY l.id",
                (task,),
            ).fetchall()
        return [Label(r[0], r[1], r[2], self.image_path(r[1], r[3])) for r in rows]

    def counts(self, task: str) -> dict[str, dict[str, int]]:
        """{class: {"train": n, "val": n}} over current labels."""
        out: dict[str, dict[str, int]] = {}
        for label in self.current(task):
            per = out.setdefault(label.class_name, {"train": 0, "val": 0})
            per[label.split] += 1
        return out

    def history(self, task: str, sha256: str) -> list[tuple[str, str, float]]:
        """(class, operator, time) of every label the image has had in `task`, oldest first."""
        with self._lock:
            return self._db.execute(
                "SELECT class_name, operator, created_at FROM labels WHERE task = ? AND image_sha256 = ? ORDER BY id", (task, sha256)
            ).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()


def snapshot(labels: list[Label]) -> dict:
    """What a training run saw: count, last label id, and a hash of the (image, class) pairs."""
    digest = hashlib.sha256("".join(f"{l.image_sha256}:{l.class_name};" for l in sorted(labels, key=lambda l: l.image_sha256)).encode())
    return {"count": len(labels), "max_label_id": max((l.id for l in labels), default=0), "hash": digest.hexdigest()[:16]}
