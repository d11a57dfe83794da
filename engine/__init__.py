"""Process plumbing shared by the worker, the starter and the tests: settings, logging, servers."""
