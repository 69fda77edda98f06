from tfa_server.cli import main

raise SystemExit(main())
