"""Fixtures of the lab tests: a private dataset cache per session."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def lab_cache(tmp_path_factory):
    """Point INITLAB_CACHE at a session folder so tests never touch the user's cache."""
    folder = tmp_path_factory.mktemp("initlab-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("INITLAB_CACHE", str(folder))
    yield folder
    patch.undo()
