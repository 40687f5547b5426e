"""Project, the composition root: each component is built once, however many threads ask first."""

from __future__ import annotations

import functools
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from framework.project import Project, load_config_dict
from framework.records import Principal

HANA = Principal(user="hana", groups=("hr",))
Q = "what is the meal limit ?"


def _get_without_lock(self, instance, owner=None):
    """functools.cached_property.__get__ as Python 3.12 and later have it: no lock (CPython's code)."""
    if instance is None:
        return self
    value = instance.__dict__.get(self.attrname, _get_without_lock)
    if value is _get_without_lock:
        value = instance.__dict__[self.attrname] = self.func(instance)
    return value


def test_concurrent_first_questions_build_one_of_each_component(two_audiences_config, monkeypatch):
    # functools.cached_property has no lock from Python 3.12: threads asking a fresh Project at once each built
    # a generator and a worker, so two workers drove one model (or two models were loaded). On older Pythons
    # its 3.12 code is put in place, so the test shows the race wherever it runs.
    if sys.version_info < (3, 12):
        monkeypatch.setattr(functools.cached_property, "__get__", _get_without_lock)
    project = Project(load_config_dict(two_audiences_config), show_progress=False)
    barrier = threading.Barrier(8)

    def first(i: int):
        barrier.wait()
        router = project.router  # each thread's own first access: what it builds or waits for
        parts = (router, router.worker, router.worker.generator, router.retriever, project.index, project.embedder)
        mode = ("prompt_only", "rag", "finetuned", "combined")[i % 4]
        return parts, router.answer([Q], principal=HANA, mode=mode)[0].text

    with ThreadPoolExecutor(max_workers=8) as pool:
        seen = list(pool.map(first, range(8)))
    for part in range(6):
        assert len({id(parts[part]) for parts, _ in seen}) == 1, f"component {part} was built more than once"
    router, worker, generator, retriever, index, embedder = seen[0][0]
    assert (project.router, project.worker, project.generator, project.retriever) == (router, worker, generator,
                                                                                      retriever)
    assert retriever.index is index and project.embedder is embedder
    serial = [project.ask_many([Q], mode=("prompt_only", "rag", "finetuned", "combined")[i % 4], principal=HANA)[0]
              for i in range(8)]
    assert [text for _, text in seen] == [a.text for a in serial]
    project.close()
