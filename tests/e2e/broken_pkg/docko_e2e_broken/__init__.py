"""A handler module that cannot be imported, as after a bad deploy."""

raise ImportError("docko_e2e_broken needs a library that is not installed")
