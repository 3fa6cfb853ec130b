from benchmarks.stack.run import main

raise SystemExit(main())
