"""`edgetl serve`: run the server in the foreground."""

from __future__ import annotations

import argparse

from edgetl.cli.common import CliError


def cmd_serve(args: argparse.Namespace) -> int:
    from edgetl.errors import EdgetlError
    from edgetl.logs import configure_logging
    from edgetl.server import eventloop
    from edgetl.server.app import serve_forever
    from edgetl.settings import Settings

    providers = tuple(p.strip() for p in args.providers.split(",")) if args.providers else None
    try:
        settings = Settings.load(
            args.config, args.data_dir, host=args.host, port=args.port, providers=providers, insecure=args.insecure,
            metrics_port=args.metrics_port, log_format=args.log_format, terminal_port=args.terminal_port, terminal=args.terminal,
        )
        configure_logging(args.log_level, settings.log_format)
        eventloop.run(serve_forever(settings, announce=lambda line: print(line, flush=True)), settings.event_loop)
    except EdgetlError as exc:
        raise CliError(str(exc)) from exc
    except KeyboardInterrupt:
        pass
    return 0


# -- client commands -------------------------------------------------------------
