"""Repository-root conftest.

Loads vmconform's pytest layer (``fixtures/``, through `fixtures.plugin`) even when the package is used from a
checkout without its
``pytest11`` entry point installed (the entry point has the same name, so it is never registered twice), and
pytest's ``pytester`` for the project's own tests of the plugin. The conformance suite lives in ``suite/``
(the default ``testpaths``); the project's own tests in ``tests/``.
"""

pytest_plugins = ["fixtures.plugin", "pytester"]
