"""pytest setup for tests/python: every test is bounded by pytest-timeout (a hang fails,
it never stalls the run); the extension module is found through PYTHONPATH, set by ctest."""
import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.timeout(60))
