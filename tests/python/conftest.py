import itertools

import pytest

from aiwaf import conf

_addresses = itertools.count(1)


@pytest.fixture
def ip():
    """A fresh client address per use (127.x.y.z), so tests never share a client's windows."""

    def make():
        n = next(_addresses)
        return f"127.{10 + n // 65536 % 200}.{n // 256 % 256}.{n % 256 or 1}"

    return make


@pytest.fixture(autouse=True, scope="session")
def _close_engines_before_the_test_database_goes(django_db_setup):
    """Engines hold connections to the test database: closed before it is dropped."""
    yield
    conf.reset()


@pytest.fixture
def engine_for():
    """Rebuilds the engine after a settings change (and again after the test)."""

    def rebuild():
        conf.reset()
        return conf.engine()

    yield rebuild
    conf.reset()


def stored(engine):
    """Waits until the records of requests so far are in the database."""
    assert engine.flush(10.0), "records not written within 10 s"
