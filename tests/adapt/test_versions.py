"""Adapter versions: numbering, crash safety, and rollback as a stack."""

from __future__ import annotations


import pytest

from edgetl.adapt.versions import AdapterVersions
from edgetl.errors import NotFound, NotReady


@pytest.fixture
def versions(tmp_path):
    v = AdapterVersions(tmp_path, tmp_path / "edgetl.db")
    yield v
    v.close()


def register(versions, task="t", job="j"):
    tmp = versions.temp_dir(task, job)
    tmp.mkdir(parents=True)
    (tmp / "manifest.json").write_text("{}")
    fields = {"method": "head", "backbone": "b", "export_id": "e", "metrics": {"accuracy": 1.0}, "options": {}, "labels": {"count": 3}}
    return versions.register(task, tmp, lambda v: fields)


def test_versions_count_up_and_move_into_place(versions):
    a, b = register(versions, job="1"), register(versions, job="2")
    assert (a.version, b.version) == (1, 2)
    assert a.path.is_dir() and not versions.temp_dir("t", "1").exists()
    assert [x.version for x in versions.list("t")] == [1, 2]


def test_a_renamed_dir_without_a_row_does_not_get_its_number_reused(versions):
    """A crash between rename and insert leaves adapters/t/1 with no row."""
    (versions.task_dir("t") / "1").mkdir(parents=True)
    assert register(versions).version == 2


def test_leftover_temp_dirs_are_cleaned(versions):
    versions.temp_dir("t", "dead").mkdir(parents=True)
    assert versions.clean_temp_dirs() == 1 and not versions.temp_dir("t", "dead").exists()


def test_rollback_walks_back_through_history(versions):
    for _ in range(3):
        register(versions, job=str(_))
    for v in (1, 2, 3):
        versions.record_activation("t", v, "trained")
    assert versions.previous_version("t") == 2
    versions.record_activation("t", 2, "rollback")
    assert versions.active_version("t") == 2 and versions.previous_version("t") == 1
    versions.record_activation("t", 1, "rollback")
    with pytest.raises(NotReady, match="no earlier active version"):
        versions.previous_version("t")


def test_no_activation_means_nothing_to_roll_back(versions):
    with pytest.raises(NotReady, match="no active adapter"):
        versions.previous_version("t")


def test_unknown_version_lists_the_known_ones(versions):
    register(versions)
    with pytest.raises(NotFound, match="versions: 1"):
        versions.get("t", 7)
