"""The tests that share a fixture of conftest.XDIST_GROUP_OF_FIXTURE run on one xdist
worker (tests/xdist_groups.py), checked on a planted suite run with ``-n 2 --dist loadgroup``."""
from __future__ import annotations

import os
from pathlib import Path

pytest_plugins = ["pytester"]

HERE = Path(__file__).resolve().parent

SUITE = '''
import os, time
import pytest

@pytest.fixture(scope="module")
def shared():
    return "built once"

def _record(name):
    with open(os.path.join(os.environ["RECORD_DIR"], name), "w") as fh:
        fh.write(os.environ["PYTEST_XDIST_WORKER"])
    time.sleep(0.3)

def test_a(shared): _record("a")
def test_b(shared): _record("b")
def test_c(): _record("c")
def test_d(): _record("d")
def test_e(shared): _record("e")
def test_f(): _record("f")
'''


def test_tests_sharing_a_fixture_run_on_one_worker(pytester, monkeypatch, tmp_path):
    """test_a, test_b and test_e share the module fixture: one worker runs all three.
    (Without the group, a and b, first and second, start on different workers.)"""
    pytester.makeconftest('pytest_plugins = ["xdist_groups"]\n'
                          "import pytest\n"
                          "@pytest.hookimpl(tryfirst=True)\n"
                          "def pytest_collection_modifyitems(items):\n"
                          "    from xdist_groups import mark_groups\n"
                          "    mark_groups(items, {'shared': 'shared_group'})\n")
    pytester.makepyfile(test_planted=SUITE)
    monkeypatch.setenv("RECORD_DIR", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=6)
    worker = {name: (tmp_path / name).read_text() for name in "abcdef"}
    assert worker["a"] == worker["b"] == worker["e"], worker
    assert set(worker.values()) == {"gw0", "gw1"}, worker   # both workers were used
    assert "test_a@shared_group" in result.stdout.str()
