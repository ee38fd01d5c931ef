"""The same submissions graded on a Dask cluster and on the local pool agree.

A ``distributed.LocalCluster`` with two worker processes stands in for a
cluster of machines: `--scheduler` sends the very jobs the local pool runs, and
every score, finding and feedback page must come out the same. Its workers run
threads, so their judges' server starts afresh (a local worker forks it): both
ways of starting a judge are compared.
"""

from __future__ import annotations

import os
import shutil
import threading
import types

import nbtools
import pytest
from conftest import ASSIGNMENTS, ROOT
from coursetools.grade import Settings, executor, grade, run_jobs
from coursetools.results import StudentResult
from coursetools.worker import Job

pytestmark = pytest.mark.slow

ASSIGNMENT = next(a for a in ASSIGNMENTS if a.startswith("ch01"))
SETTINGS = dict(jobs=2, timeout=20, notebook_timeout=120, quiet=True)


def make_course(folder):
    """A class of four: full marks, blank, half, and an edited test beside a file."""
    shutil.copy(ROOT / "nbgrader_config.py", folder)
    shutil.copytree(ROOT / "solutions" / ASSIGNMENT, folder / "solutions" / ASSIGNMENT)
    (source,) = sorted((ROOT / "solutions" / ASSIGNMENT).glob("*.ipynb"))
    solution = nbtools.load(source)
    release = nbtools.load(ROOT / "exercises" / ASSIGNMENT / source.name)
    answers = [nbtools.nbgrader_meta(c)["grade_id"]
               for c in nbtools.answer_cells(solution)]
    class_ = {
        "full": nbtools.fill_answers(release, solution, set(answers)),
        "blank": nbtools.fill_answers(release, solution, set()),
        "half": nbtools.fill_answers(release, solution, set(answers[::2])),
        "edited": nbtools.fill_answers(release, solution, set(answers[1::2])),
    }
    test_cell = next(c for c in class_["edited"]["cells"]
                     if nbtools.nbgrader_meta(c).get("grade"))
    test_cell["source"] = "assert True  # trust me\n"
    for student, nb in class_.items():
        nbtools.save(nb, folder / "submitted" / student / ASSIGNMENT / source.name)
        (folder / "submitted" / student / ASSIGNMENT / "timestamp.txt").write_text(
            "2026-11-30 12:00:00.000000 UTC")
    (folder / "submitted" / "edited" / ASSIGNMENT / "notes.txt").write_text("hi")
    return sorted(class_)


def outcome(course, students):
    """Scores, finding codes and feedback pages of a graded course."""
    seen = {}
    for student in students:
        state = course / "grading" / ASSIGNMENT / "state" / f"{student}.json"
        result = StudentResult.from_json(state.read_text())
        pages = {p.name: p.read_text() for p in
                 sorted((course / "feedback" / student / ASSIGNMENT).glob("*.html"))}
        cells = {n: {g: (c.score, c.failure) for g, c in nb.cells.items()}
                 for n, nb in result.notebooks.items()}
        seen[student] = (cells, sorted({f.code for f in result.all_findings()}), pages)
    return seen


def test_a_dask_cluster_grades_exactly_as_the_local_pool(tmp_path):
    distributed = pytest.importorskip("distributed")
    local, remote = tmp_path / "local", tmp_path / "dask"
    local.mkdir()
    remote.mkdir()
    students = make_course(local)
    make_course(remote)
    here = grade(local, ASSIGNMENT, Settings(**SETTINGS))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        there = grade(remote, ASSIGNMENT,
                      Settings(**SETTINGS, scheduler=cluster.scheduler_address))
        worker_pids = {w.pid for w in cluster.workers.values() if w.process}
    assert not here.not_graded and not there.not_graded
    assert here.scores == there.scores
    assert here.scores["full"][0] == here.scores["full"][1] > 0
    assert here.scores["blank"][0] == 0
    assert 0 < here.scores["half"][0] < here.scores["full"][0]
    assert outcome(local, students) == outcome(remote, students)
    assert "tampered" in outcome(remote, students)["edited"][1]
    assert "extra_file" in outcome(remote, students)["edited"][1]
    # The jobs really ran in the cluster's two worker processes.
    ran_on = {int(w.rsplit(":", 1)[1]) for w in there.workers}
    assert ran_on and ran_on <= worker_pids, (ran_on, worker_pids)


def dies_as_told(context, job: Job) -> StudentResult:
    """Grades nobody; the student "killer" ends the worker process it runs in."""
    if job.student == "killer":
        os._exit(3)
    return StudentResult(job.student, "a1", token=job.token, worker="fake")


def test_a_dying_dask_worker_costs_only_its_own_student():
    """Red-team pass 4: on a one-worker cluster the killer's death took the
    scattered context and its queued classmates with it (all "not graded")."""
    distributed = pytest.importorskip("distributed")
    import dask

    students = ["before", "killer", "after1", "after2", "after3"]
    seen: dict[str, list[StudentResult]] = {}
    context = types.SimpleNamespace(run="fake")  # scattered whole, as a Context is
    # Dask's own retries off: run_jobs decides who was at fault.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=1,
                                     processes=True, dashboard_address=None) as cluster:
        settings = Settings(scheduler=cluster.scheduler_address)
        with executor(settings, context) as (pool, slots, shared):
            ended = {}
            runner = threading.Thread(daemon=True, target=lambda: ended.update(
                not_graded=run_jobs(
                    pool, slots, students, shared,
                    lambda student, token: Job(student, token, {}, {}),
                    lambda r: seen.setdefault(r.student, []).append(r),
                    work=dies_as_told)))
            runner.start()
            runner.join(120)  # the killer's three deaths take about 10 s
            assert ended, "run_jobs still waits for a job whose worker died"
    assert not ended["not_graded"] and sorted(seen) == sorted(students)
    assert all(len(results) == 1 for results in seen.values()), seen
    for student in students:
        result = seen[student][0]
        if student == "killer":
            assert result.retryable and "stopped unexpectedly" in result.errors[0]
        else:
            assert result.errors == [] and not result.retryable, (student, result)


def test_the_worker_settings_in_dask_worker_yaml_are_all_dask_settings():
    """A misspelt key in dask-worker.yaml would be ignored without a word."""
    dask = pytest.importorskip("dask")
    pytest.importorskip("distributed")  # its defaults are Dask's settings too
    settings = nbtools.dask_worker_settings()
    assert settings["distributed.worker.profile.enabled"] is False
    for key, value in settings.items():
        default = dask.config.get(key, default=KeyError)
        assert default is not KeyError, f"dask-worker.yaml: {key} is not a Dask setting"
        assert default != value, f"dask-worker.yaml: {key} is already {value!r}"
