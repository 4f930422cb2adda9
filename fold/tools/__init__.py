"""Tools built on the engine: ``fold.tools.pytest_plugin`` (a fold asserted in a pytest test)."""
