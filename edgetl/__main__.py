"""`python -m edgetl` is the `edgetl` command."""

from edgetl.cli import main

raise SystemExit(main())
