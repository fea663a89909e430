from explainface.cli import main

raise SystemExit(main())
