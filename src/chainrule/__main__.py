"""`python -m chainrule` runs the same command line as `chainrule`."""

from chainrule.cli import main

raise SystemExit(main())
