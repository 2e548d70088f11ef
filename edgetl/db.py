"""SQLite connections set up the one way edgetl uses them: WAL, synchronous=FULL.

WAL lets the training process read labels while the server writes;
synchronous=FULL means an acknowledged write survives a power cut
(DESIGN.md decision 4). Each store owns its tables and its connection.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

DB_FILE = "edgetl.db"


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    path = Path(path)
    if readonly:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
    return db
