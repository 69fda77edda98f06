from tfa_tui.cli import main

raise SystemExit(main())
