"""pytest plugin: the tests that share an expensive fixture run on one pytest-xdist worker.

``mark_groups`` gives each test the ``xdist_group`` of the shared fixtures it uses, and
``--dist loadgroup`` (pyproject.toml) sends each group to one worker as a whole.
pytest-xdist 3.8 tells its scheduler a test's group by appending ``@group`` to
``item._nodeid``, which pytest 9.2 no longer reads (node ids are structured there,
``item._id``): grouped tests would be spread over the workers without a word
(pytest-dev/pytest-xdist#1386).  The hook below appends the suffix where xdist's did not
take, and stops the run if it cannot.
"""
from __future__ import annotations

import pytest


def mark_groups(items, group_of_fixture: dict) -> None:
    """Mark each test with the xdist group of the fixtures of ``group_of_fixture`` it uses."""
    for item in items:
        groups = {group_of_fixture[name] for name in getattr(item, "fixturenames", ())
                  if name in group_of_fixture}
        if len(groups) > 1:
            raise pytest.UsageError(f"{item.nodeid} uses fixtures of xdist groups {sorted(groups)}")
        if groups:
            item.add_marker(pytest.mark.xdist_group(groups.pop()))


def _group_suffix(item) -> str | None:
    names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                    for mark in item.iter_markers("xdist_group")})
    return "@" + "_".join(names) if names else None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """After pytest-xdist's own hook (on a worker with --dist loadgroup): the group suffix
    on every grouped test's node id."""
    if not config.getoption("loadgroup", default=False):
        return
    for item in items:
        suffix = _group_suffix(item)
        if suffix is None or item.nodeid.endswith(suffix):
            continue
        if hasattr(item, "_id"):
            from _pytest.nodeid import NodeId

            item._id = NodeId.parse(item.nodeid + suffix)
        if not item.nodeid.endswith(suffix):
            raise pytest.UsageError(f"cannot tell pytest-xdist the group of {item.nodeid} with this "
                                    "pytest: run `pytest -n 0` (one process)")
