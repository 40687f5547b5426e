"""Answers under A/B experiments: assign the caller's arm, answer through the router, log the exposure.

`ExperimentRouter.answer` is what `Project.ask` and `ragtune serve` call. A request without an explicit
mode gets the caller's arm of the experiment it names (a `model` of the HTTP server) or, naming none, of
the first running experiment whose audience holds the caller; the router applies the arm (mode, adapter,
top_k, prompt), and each answer is logged as an exposure under its request id before it is returned, so
an outcome can name it at once. An explicit mode is never in an experiment and never logged.

Prompt tokens are counted with its own instance of the local model's tokenizer (the worker thread owns the
generator's); with an OpenAI-compatible backend they are not known and stay empty.

Example:
    >>> ab = ExperimentRouter(project.router, project.experiments)                    # doctest: +SKIP
    >>> ab.answer(["How many leave days?"], principal=Principal(user="ana"))[0].arm     # doctest: +SKIP
    'concise'
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from typing import Sequence

from sqlalchemy.exc import SQLAlchemyError

from framework.adapters.registry import AdapterError, AdapterRegistry, ServeRule
from framework.config import ExperimentConfig
from framework.experiments.live import Experiments
from framework.records import Answer, Principal
from framework.serving.router import Router

log = logging.getLogger(__name__)


class PromptTokens:
    """Counts the tokens of rendered prompts as the local generator encodes them (None for a remote one).

    Its own tokenizer, loaded from the model's folder: the worker thread owns the generator's, whose padding
    settings change per batch, so sharing it across threads could fail mid-encode."""

    def __init__(self, router: Router) -> None:
        self._router = router  # its generator is read on first use: building this loads no model
        self._tokenizer = None
        self._lock = threading.Lock()

    def __call__(self, prompt: str) -> int | None:
        with self._lock:
            if self._tokenizer is None:
                folder = getattr(self._router.generator, "model_dir", None)
                if folder is None or not hasattr(self._router.generator, "tokenizer"):
                    return None
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            return len(self._tokenizer(prompt, add_special_tokens=False)["input_ids"])


class ExperimentRouter:
    def __init__(self, router: Router, experiments: Experiments | None) -> None:
        self.router = router
        self.experiments = experiments
        self.prompt_tokens = PromptTokens(router)

    def answer(self, questions: Sequence[str], *, principal: Principal, mode: str | None = None,
               experiment: str | None = None, end_user: str | None = None, max_new_tokens: int | None = None,
               request_ids: Sequence[str] | None = None, stop: Sequence[str] = ()) -> list[Answer]:
        """Answer as the router does, under the caller's experiment arm unless `mode` is explicit; every answer
        carries its request id (`request_ids`, else new ones), and an answer in an arm its experiment and arm."""
        if experiment is not None and self.experiments is None:
            raise ValueError(f"no experiment named {experiment!r}: the config has no `experiments:`")
        arm, note = (None, None) if mode or self.experiments is None else \
            self.experiments.assign(principal, requested=experiment, end_user=end_user or principal.user)
        try:
            answers = self.router.answer(questions, principal=principal, mode=mode, max_new_tokens=max_new_tokens,
                                         arm=arm, stop=stop)
        except AdapterError as err:
            if arm is None or not arm.settings.adapter:
                raise
            raise AdapterError(f"experiment {arm.experiment} arm {arm.arm} names adapter {arm.settings.adapter!r}: "
                               f"{err}") from None
        ids = list(request_ids) if request_ids is not None else [f"ask-{uuid.uuid4().hex}" for _ in answers]
        answers = [dataclasses.replace(a, request_id=i, reason=f"{a.reason}; {note}" if note else a.reason,
                                       experiment=arm.experiment if arm else None, arm=arm.arm if arm else None)
                   for a, i in zip(answers, ids)]
        for a in answers if arm is not None else ():
            try:
                self.experiments.expose(arm, a, request_id=a.request_id, prompt_tokens=self.prompt_tokens(a.prompt))
            except (SQLAlchemyError, OSError):  # the user keeps the answer; the report shows the gap (fewer exposures)
                log.exception("could not log the exposure of %s (experiment %s arm %s)", a.request_id,
                              arm.experiment, arm.arm)
        return answers


def check_arms(experiments: Sequence[ExperimentConfig], registry: AdapterRegistry, *, serve: ServeRule) -> None:
    """Refuse to serve an enabled experiment whose arm names an adapter (or version) that is not served, so
    `ragtune serve` fails at start instead of failing every user of that arm; raises AdapterError naming the key."""
    for i, e in enumerate(experiments):
        for j, arm in enumerate(e.arms):
            if not (e.enabled and arm.adapter):
                continue
            try:
                registry.resolve(arm.adapter, serve=serve)
            except AdapterError as err:
                raise AdapterError(f"experiments.{i}.arms.{j}.adapter ({e.name} arm {arm.name}): {err}") from None
