"""The review store: captured items in SQLite, their images content-addressed on disk.

Like labels (edgetl/adapt/labels.py), an image is written crash-safe at
``review/<sha256[:2]>/<sha256>.<ext>`` *before* its row, so a row never
points at a missing file. Images are deleted on purpose only: when an item
is rejected, when its image has become a label (the label store then holds
it), or when the task's disk cap evicts the oldest unreviewed items. A row
is updated before its file is deleted; a crash in between leaves a file no
row needs, which `sweep` removes at the next start. Rows are never deleted:
they are the history that live accuracy is computed from.

States: ``pending`` -> ``accepted`` | ``relabelled`` | ``rejected`` |
``skipped`` | ``evicted``; skipped items can still be resolved, and an
accepted or relabelled item can be relabelled again (a correction).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from edgetl.db import connect
from edgetl.errors import InvalidInput, NotFound
from edgetl.fsutil import write_bytes_atomic

PENDING, SKIPPED, ACCEPTED, RELABELLED, REJECTED, EVICTED = "pending", "skipped", "accepted", "relabelled", "rejected", "evicted"
STATES = (PENDING, SKIPPED, ACCEPTED, RELABELLED, REJECTED, EVICTED)
#: States whose image is still in the review directory.
UNREVIEWED = (PENDING, SKIPPED)
_UNREVIEWED_SQL = "('pending', 'skipped')"
#: States whose image is in the label store.
LABELLED = (ACCEPTED, RELABELLED)
STATE_FILTERS = {
    "": (PENDING,),
    "pending": (PENDING,),
    "skipped": (SKIPPED,),
    "resolved": (ACCEPTED, RELABELLED, REJECTED),
    "all": STATES,
    **{s: (s,) for s in STATES},
}
ORDERS = {
    "": ("score", "ASC"),
    "score": ("score", "ASC"),
    "-score": ("score", "DESC"),
    "time": ("captured_at", "ASC"),
    "-time": ("captured_at", "DESC"),
}
MAX_PAGE = 500
DEFAULT_PAGE = 50

_EXT = {"png": "png", "jpeg": "jpg", "bmp": "bmp"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS review_items (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    task            TEXT NOT NULL,
    image_sha256    TEXT NOT NULL,
    format          TEXT NOT NULL,
    width           INTEGER NOT NULL,
    height          INTEGER NOT NULL,
    size            INTEGER NOT NULL,
    captured_at     REAL NOT NULL,
    adapter_version TEXT NOT NULL,
    predicted       TEXT NOT NULL,
    score           REAL NOT NULL,
    margin          REAL NOT NULL,
    scores          TEXT NOT NULL,            -- JSON list, the task's class order at capture time
    reasons         TEXT NOT NULL,            -- JSON list: uncertain, random, flagged, ...
    sampled         INTEGER NOT NULL,         -- 1: in the random sample (live accuracy)
    caller          TEXT NOT NULL DEFAULT '',
    request_id      TEXT NOT NULL DEFAULT '',
    state           TEXT NOT NULL DEFAULT 'pending',
    resolved_at     REAL,
    resolved_by     TEXT NOT NULL DEFAULT '',
    resolved_class  TEXT NOT NULL DEFAULT '',
    label_id        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS review_by_score ON review_items(task, state, score, id);
CREATE INDEX IF NOT EXISTS review_by_time ON review_items(task, state, captured_at, id);
CREATE INDEX IF NOT EXISTS review_by_image ON review_items(image_sha256, state);
"""

_COLUMNS = (
    "id, task, image_sha256, format, width, height, size, captured_at, adapter_version, predicted, score, margin, scores, "
    "reasons, sampled, caller, request_id, state, resolved_at, resolved_by, resolved_class, label_id"
)


@dataclass(frozen=True)
class Capture:
    """A classified image on its way into the store (built by the capture writer)."""

    task: str
    data: bytes  # the image file: as received, or PNG for raw camera pixels
    format: str
    width: int
    height: int
    adapter_version: str
    predicted: str
    score: float
    margin: float
    scores: list[float]
    reasons: list[str]
    caller: str = ""
    request_id: str = ""
    captured_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Item:
    id: int
    task: str
    image_sha256: str
    format: str
    width: int
    height: int
    size: int
    captured_at: float
    adapter_version: str
    predicted: str
    score: float
    margin: float
    scores: list[float]
    reasons: list[str]
    sampled: bool
    caller: str
    request_id: str
    state: str
    resolved_at: float
    resolved_by: str
    resolved_class: str
    label_id: int


@dataclass(frozen=True)
class Query:
    task: str
    state: str = ""
    reasons: tuple[str, ...] = ()
    predicted: str = ""
    min_score: float | None = None
    max_score: float | None = None
    order: str = ""
    page_size: int = 0
    page_token: str = ""


class ReviewStore:
    """Review items and their images. Safe to share between threads.

    Args:
        data_dir: the server's data directory; images go under ``review/``.
        db_path: the SQLite file (shared with the other stores).
        label_image: (sha256, format) -> path of that image in the label
            store, where an accepted or relabelled item's image lives on.
    """

    def __init__(self, data_dir: Path, db_path: Path, label_image: Callable[[str, str], Path]):
        self.root = Path(data_dir) / "review"
        self.label_image = label_image
        self._db = connect(db_path)
        self._lock = threading.Lock()
        with self._lock:
            self._db.executescript(SCHEMA)

    # -- files ----------------------------------------------------------------
    def image_path(self, sha256: str, fmt: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.{_EXT[fmt]}"

    def image(self, item: Item) -> bytes:
        """The item's image as captured; NotFound once it was discarded."""
        if item.state in (REJECTED, EVICTED):
            why = "rejected by an operator" if item.state == REJECTED else "removed by the task's disk cap before it was reviewed"
            raise NotFound(f"review item {item.id} was {why}; its image is gone")
        for path in (self.image_path(item.image_sha256, item.format), self.label_image(item.image_sha256, item.format)):
            try:
                return path.read_bytes()
            except FileNotFoundError:
                continue
        raise NotFound(f"review item {item.id}: its image file is missing from {self.root}")

    def _delete_image_if_unused(self, sha256: str, fmt: str) -> None:
        """Remove a review image once no unreviewed item needs it (same lock held)."""
        still = self._db.execute(
            f"SELECT 1 FROM review_items WHERE image_sha256 = ? AND state IN {_UNREVIEWED_SQL} LIMIT 1", (sha256,)
        ).fetchone()
        if still is None:
            self.image_path(sha256, fmt).unlink(missing_ok=True)

    def sweep(self) -> int:
        """At start-up: delete review images no unreviewed item needs (left by a crash). Returns how many."""
        if not self.root.is_dir():
            return 0
        with self._lock:
            needed = {r[0] for r in self._db.execute(f"SELECT DISTINCT image_sha256 FROM review_items WHERE state IN {_UNREVIEWED_SQL}")}
        removed = 0
        for path in self.root.glob("*/*"):
            sha = path.name.split(".", 1)[0]
            if path.name.startswith(".") or sha not in needed:  # temp files of an interrupted write, too
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    # -- capture --------------------------------------------------------------
    def add(self, capture: Capture, disk_cap: int) -> tuple[int, list[Item]]:
        """Store a captured image; returns (item id, items evicted to make room).

        Raises InvalidInput when the image alone is larger than the task's
        disk cap (it is not stored, and nothing is evicted for it).
        """
        size = len(capture.data)
        if size > disk_cap:
            raise InvalidInput(f"image of {size:,} bytes is larger than task {capture.task!r}'s review disk cap ({disk_cap:,} bytes)")
        sha = hashlib.sha256(capture.data).hexdigest()
        path = self.image_path(sha, capture.format)
        evicted: list[Item] = []
        with self._lock:
            evicted = self._make_room(capture.task, size, disk_cap)
            if not path.is_file():
                write_bytes_atomic(path, capture.data)  # the file first: a row never points at nothing
            item_id = self._db.execute(
                f"INSERT INTO review_items ({_COLUMNS.replace('id, ', '', 1)}) VALUES ({', '.join('?' * 21)})",
                (
                    capture.task, sha, capture.format, capture.width, capture.height, size, capture.captured_at, capture.adapter_version,
                    capture.predicted, float(capture.score), float(capture.margin), json.dumps([round(float(s), 6) for s in capture.scores]),
                    json.dumps(list(capture.reasons)), int("random" in capture.reasons), capture.caller, capture.request_id,
                    PENDING, None, "", "", 0,
                ),
            ).lastrowid
        return item_id, evicted

    def _make_room(self, task: str, size: int, cap: int) -> list[Item]:
        """Evict the task's oldest unreviewed items (skipped before pending) until `size` more bytes fit."""
        used = self._stored_bytes(task)
        evicted = []
        if used + size <= cap:
            return evicted
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM review_items WHERE task = ? AND state IN {_UNREVIEWED_SQL} "
            "ORDER BY state = 'pending', captured_at, id",
            (task,),
        ).fetchall()
        for row in rows:
            if used + size <= cap:
                break
            item = _item(row)
            self._db.execute("UPDATE review_items SET state = ?, resolved_at = ? WHERE id = ?", (EVICTED, time.time(), item.id))
            self._delete_image_if_unused(item.image_sha256, item.format)
            used -= item.size
            evicted.append(item)
        return evicted

    def _stored_bytes(self, task: str) -> int:
        row = self._db.execute(f"SELECT COALESCE(SUM(size), 0) FROM review_items WHERE task = ? AND state IN {_UNREVIEWED_SQL}", (task,)).fetchone()
        return int(row[0])

    def captured_since(self, since: float) -> dict[str, list[float]]:
        """Capture times per task since `since` (to restore the rate caps after a restart)."""
        with self._lock:
            rows = self._db.execute("SELECT task, captured_at FROM review_items WHERE captured_at >= ? ORDER BY captured_at", (since,)).fetchall()
        out: dict[str, list[float]] = {}
        for task, at in rows:
            out.setdefault(task, []).append(at)
        return out

    # -- reading --------------------------------------------------------------
    def get(self, item_id: int) -> Item:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM review_items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise NotFound(f"unknown review item {item_id}")
        return _item(row)

    def list(self, query: Query) -> tuple[list[Item], int, str]:
        """(items, total matching, next page token or '')."""
        states = STATE_FILTERS.get(query.state)
        if states is None:
            raise InvalidInput(f"unknown review state filter {query.state!r}; use one of {', '.join(k for k in STATE_FILTERS if k)}")
        if query.order not in ORDERS:
            raise InvalidInput(f"unknown review order {query.order!r}; use score, -score, time or -time")
        if query.page_size > MAX_PAGE:
            raise InvalidInput(f"page_size {query.page_size} is over the limit of {MAX_PAGE}")
        column, direction = ORDERS[query.order]
        where = ["task = ?", f"state IN ({', '.join('?' * len(states))})"]
        params: list = [query.task, *states]
        if query.reasons:
            where.append(f"EXISTS (SELECT 1 FROM json_each(reasons) WHERE value IN ({', '.join('?' * len(query.reasons))}))")
            params += list(query.reasons)
        if query.predicted:
            where.append("predicted = ?")
            params.append(query.predicted)
        if query.min_score is not None:
            where.append("score >= ?")
            params.append(query.min_score)
        if query.max_score is not None:
            where.append("score <= ?")
            params.append(query.max_score)
        count_sql = f"SELECT COUNT(*) FROM review_items WHERE {' AND '.join(where)}"
        count_params = list(params)
        # Keyset paging on (column, id): resolving items on one page does not
        # shift the next one, as an offset would.
        if query.page_token:
            key, last_id = _decode_token(query.page_token, query.order)
            op = ">" if direction == "ASC" else "<"
            where.append(f"({column} {op} ? OR ({column} = ? AND id {op} ?))")
            params += [key, key, last_id]
        size = query.page_size or DEFAULT_PAGE
        sql = f"SELECT {_COLUMNS} FROM review_items WHERE {' AND '.join(where)} ORDER BY {column} {direction}, id {direction} LIMIT ?"
        with self._lock:
            total = self._db.execute(count_sql, count_params).fetchone()[0]
            rows = self._db.execute(sql, [*params, size + 1]).fetchall()
        items = [_item(r) for r in rows[:size]]
        token = ""
        if len(rows) > size:
            last = items[-1]
            token = _encode_token(getattr(last, column), last.id, query.order)
        return items, total, token

    def summary(self, tasks: Iterable[str]) -> dict[str, dict]:
        """Per task: pending, skipped, resolved, pending_by_reason, stored_bytes."""
        out = {t: {"pending": 0, "skipped": 0, "resolved": 0, "pending_by_reason": {}, "stored_bytes": 0} for t in tasks}
        with self._lock:
            for task, state, n, size in self._db.execute("SELECT task, state, COUNT(*), COALESCE(SUM(size), 0) FROM review_items GROUP BY task, state"):
                entry = out.get(task)
                if entry is None:
                    continue
                if state in (PENDING, SKIPPED):
                    entry[state] += n
                    entry["stored_bytes"] += size
                elif state in (ACCEPTED, RELABELLED, REJECTED):
                    entry["resolved"] += n
            rows = self._db.execute(
                "SELECT r.task, j.value, COUNT(*) FROM review_items r, json_each(r.reasons) j WHERE r.state = 'pending' GROUP BY r.task, j.value"
            ).fetchall()
        for task, reason, n in rows:
            if task in out:
                out[task]["pending_by_reason"][reason] = n
        return out

    def pending(self, task: str) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM review_items WHERE task = ? AND state = 'pending'", (task,)).fetchone()[0]

    def sampled_verdicts(self, task: str) -> list[tuple[str, bool, float]]:
        """(adapter version, prediction was right, captured_at) of each reviewed random-sample item."""
        with self._lock:
            rows = self._db.execute(
                "SELECT adapter_version, resolved_class = predicted, captured_at FROM review_items "
                "WHERE task = ? AND sampled = 1 AND state IN ('accepted', 'relabelled') ORDER BY captured_at",
                (task,),
            ).fetchall()
        return [(v, bool(right), at) for v, right, at in rows]

    # -- resolving ------------------------------------------------------------
    def mark(self, item: Item, state: str, by: str, class_name: str = "", label_id: int = 0) -> Item:
        """Record a resolution, then drop the review copy of the image if nothing else needs it."""
        with self._lock:
            self._db.execute(
                "UPDATE review_items SET state = ?, resolved_at = ?, resolved_by = ?, resolved_class = ?, label_id = ? WHERE id = ?",
                (state, time.time(), by, class_name, label_id, item.id),
            )
            if state not in UNREVIEWED:
                self._delete_image_if_unused(item.image_sha256, item.format)
            row = self._db.execute(f"SELECT {_COLUMNS} FROM review_items WHERE id = ?", (item.id,)).fetchone()
        return _item(row)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _item(row) -> Item:
    return Item(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10], row[11], json.loads(row[12]),
        json.loads(row[13]), bool(row[14]), row[15], row[16], row[17], row[18] or 0.0, row[19], row[20], row[21],
    )


def _encode_token(key, last_id: int, order: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([key, last_id, order]).encode()).decode()


def _decode_token(token: str, order: str) -> tuple[float, int]:
    try:
        key, last_id, token_order = json.loads(base64.urlsafe_b64decode(token.encode()))
        if token_order != order:
            raise ValueError("order changed")
        return float(key), int(last_id)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"page_token is not one this server gave for this order ({exc}); start again without it") from None
