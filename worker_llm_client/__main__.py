from worker_llm_client.cli import main

raise SystemExit(main())
