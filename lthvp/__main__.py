from lthvp.cli import main

raise SystemExit(main())
