"""``python -m bot`` runs the same CLI as the ``foundation-bot`` script."""

from bot.cli import main

raise SystemExit(main())
