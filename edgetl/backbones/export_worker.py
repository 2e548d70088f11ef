"""The export process: `python -m edgetl.backbones.export_worker` < request JSON.

Spawned by ModelStore.ensure so torch is imported here and never in the
server. Reads {"settings", "backbone", "store"} from stdin, exports, exits 0;
on failure prints one line to stderr and exits 1.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="edgetl export: %(message)s", stream=sys.stderr)
    from edgetl.backbones.export import export_backbone
    from edgetl.backbones.registry import BackboneRegistry
    from edgetl.errors import EdgetlError
    from edgetl.runtime.store import ModelStore
    from edgetl.settings import Settings

    request = json.loads(sys.stdin.read())
    try:
        settings = Settings.from_dict(request["settings"])
        backbone = BackboneRegistry.from_settings(settings).get(request["backbone"])
        started = time.monotonic()
        record = ModelStore(Path(request["store"])).write(backbone, lambda path: export_backbone(backbone, path))
    except EdgetlError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - one line for the parent, not a traceback
        logging.getLogger(__name__).exception("export failed")
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    logging.info("exported %s in %.1f s (%s)", record.export_id, time.monotonic() - started, record.manifest["exporter"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
