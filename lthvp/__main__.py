from lthvp.commands.cli import main

raise SystemExit(main())
