"""A Django project of no apps, for the tests of ``docko_worker.enqueue`` on Django's connection."""
