"""Log lines for people (text) or for log shippers (one JSON object per line).

JSON lines carry ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``,
and ``exception`` with the traceback when there is one, so Loki, Elastic or
journald's JSON output can index them without a parsing rule.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "text") -> None:
    """Root logging to stderr, as text or JSON lines."""
    if log_format not in ("text", "json"):
        from edgetl.errors import ConfigError

        raise ConfigError(f"[server] log_format must be 'text' or 'json', not {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
