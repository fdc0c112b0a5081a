"""``docko-worker demo``: the daemon on a sample document workload, with progress and a summary.

This package owns the demo; ``run_demo`` is its entry point. The embedded PostgreSQL it falls back
on lives in ``docko_worker/embedded.py``. Its modules:

- ``command``: the command: arguments, logging, the server, the event loop, the output;
- ``session``: one run on a server: the daemon, the jobs, progress until they are all final;
- ``database``: the demo database ``docko_demo``, dropped and created afresh;
- ``workload``: the sample documents, their jobs' payloads and the handlers that simulate the work;
- ``display``: status lines, the progress line and the log lines that would garble it;
- ``report``: the enqueue-to-start latency measurement, the outcome and the summary.

A run:

1. uses the server of ``DOCKO_DATABASE_URL`` (or ``DATABASE_URL``) if set, else starts an embedded
   one; on that server it drops and creates the database ``docko_demo`` and migrates it, so every
   run starts empty and the configured database itself is never written to;
2. enqueues ``--jobs`` jobs in bulk (``enqueue_many``), four per document: ``ocr``, ``extract_text``
   and ``index`` on queue ``documents``, ``thumbnail`` on queue ``previews``;
3. runs the daemon in this process (``Queue.start``) until every job is completed or failed. The
   handlers sleep to simulate the work and fail ``--failure-rate`` of their attempts with a
   realistic error, so jobs retry with backoff; OCR gets only 2 attempts, and the few documents
   marked corrupt fail at once with a ``PermanentError``;
4. enqueues 20 jobs one by one to the idle daemon to measure enqueue-to-start latency, stops the
   daemon gracefully and prints a summary.

Logging runs at ``warning`` level, minus the retry and failure events of the simulated errors (the
summary counts them); any other warning or error, an unexpected handler error included, still shows.
"""

from .command import run_demo

__all__ = ["run_demo"]
