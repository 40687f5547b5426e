"""The experiments of a running project: who gets which arm now, the exposure log, outcomes, the report.

`Experiments` holds the `experiments:` section, the store and a clock; the router's caller asks it for the
caller's arm (`assign`), logs what was served (`expose`), and records what came of it (`record_outcome`).
Nothing is cached between requests, so the arms a config names are the arms served.

Example:
    >>> live = Experiments(config.experiments, ExperimentStore("sqlite:///ws/experiments.sqlite"))  # doctest: +SKIP
    >>> live.assign(Principal(user="ana"))                                                           # doctest: +SKIP
    (Assignment(experiment='greeting', arm='concise', unit_id='ana', bucket=4172, ...), None)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from framework.adapters.registry import AdapterRegistry, ServeRule
from framework.config import Config, ConfigError, ExperimentConfig
from framework.experiments.assignment import Assignment, assign
from framework.experiments.output import write_report
from framework.experiments.report import ExperimentReport, build_report
from framework.experiments.store import ExperimentStore, Exposure
from framework.records import Answer, Principal


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class UnknownExperimentError(ValueError):
    pass


def _left_out(audience: tuple[str, ...], callers: list[str]) -> str | None:
    """Who of `callers` (groups; empty: everyone) an adapter of `audience` refuses (None: nobody)."""
    if not audience:
        return None
    if not callers:
        return f"every caller outside {', '.join(audience)} (the experiment's audience is everyone)"
    missing = [g for g in callers if g not in audience]
    return f"groups {', '.join(missing)}" if missing else None


def arm_audience_problems(config: Config, registry: AdapterRegistry, *, serve: ServeRule = "promoted",
                          now: datetime | None = None) -> list[str]:
    """Arms that answer with an adapter (finetuned or combined) whose audience is narrower than their experiment's.

    Every caller of the experiment outside the adapter's audience would get 403 on every request of that arm,
    and no exposure would be logged: the arm's numbers would describe only the adapter's audience. The adapter
    is the arm's `adapter`, else the one the router serves its callers (`router.group_adapters` for a group of
    the experiment's audience, else `router.adapter`), at the version served now; an adapter nothing serves yet
    is left to `ragtune serve`'s check (serving.ab.check_arms). `auto` arms are not checked: auto answers
    without an adapter its caller may not use. Ended and disabled experiments are not checked."""
    now = now or utc_now()
    r = config.router
    problems = []
    for i, e in enumerate(config.experiments):
        if not e.enabled or (e.end is not None and e.end <= now):
            continue
        for j, arm in enumerate(e.arms):
            if arm.mode not in ("finetuned", "combined"):
                continue
            if arm.adapter:
                uses = [(arm.adapter, None, f"experiments.{i}.arms.{j}.adapter", f"adapter {arm.adapter}",
                         list(e.audience))]
            else:
                groups = list(e.audience) or [None]
                uses = [(r.group_adapters[g], None, f"experiments.{i}.arms.{j}.mode",
                         f"router.group_adapters.{g} ({r.group_adapters[g]})", [g]) if g in r.group_adapters else
                        (r.adapter, r.adapter_version, f"experiments.{i}.arms.{j}.mode",
                         f"router.adapter ({r.adapter})", [g] if g else []) for g in groups]
            for spec, pinned, key, what, callers in uses:
                ref = registry.served(spec, pinned, serve=serve)
                if ref is None:
                    continue
                left = _left_out(tuple(ref.manifest.audience), list(callers))
                if left:
                    problems.append(
                        f"{key}: experiment {e.name} arm {arm.name} answers in {arm.mode} with {what}, version "
                        f"{ref.version}, whose audience is {', '.join(ref.manifest.audience)}; {left} would be "
                        f"refused (403) on every request of this arm, and no exposure logged. Narrow "
                        f"experiments.{i}.audience to groups of the adapter's audience, give the arm an adapter "
                        f"trained for them, or stop the experiment (experiments.{i}.enabled: false)")
    return list(dict.fromkeys(problems))


def check_arm_audiences(config: Config, registry: AdapterRegistry, *, serve: ServeRule = "promoted") -> None:
    """Refuse a config whose experiment sends callers to an adapter they may not use (see arm_audience_problems);
    a ConfigError naming each arm, adapter and the callers left out."""
    problems = arm_audience_problems(config, registry, serve=serve)
    if problems:
        raise ConfigError("experiment arms whose adapter cannot answer all of the experiment's audience:\n  "
                          + "\n  ".join(problems))


@dataclass(frozen=True)
class Experiments:
    configs: tuple[ExperimentConfig, ...]
    store: ExperimentStore
    clock: Callable[[], datetime] = field(default=utc_now)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.configs)

    def get(self, name: str) -> ExperimentConfig:
        for e in self.configs:
            if e.name == name:
                return e
        raise UnknownExperimentError(f"no experiment named {name!r} in `experiments:` of the config; configured: "
                                     f"{', '.join(self.names) or 'none'}")

    def assign(self, principal: Principal, *, requested: str | None = None,
               end_user: str | None = None) -> tuple[Assignment | None, str | None]:
        """The caller's arm now (see assignment.assign), and a note when a requested experiment did not apply."""
        if requested is not None:
            self.get(requested)
        return assign(self.configs, principal=principal, now=self.clock(), requested=requested, end_user=end_user)

    def expose(self, assignment: Assignment, answer: Answer, *, request_id: str, prompt_tokens: int | None) -> Exposure:
        """Log one answer served under `assignment`; the text only with the experiment's `log_text: true`."""
        text = self.get(assignment.experiment).log_text
        exposure = Exposure(request_id=request_id, experiment=assignment.experiment, arm=assignment.arm,
                            unit_id=assignment.unit_id, mode=answer.mode, adapter=answer.adapter,
                            latency_s=answer.latency_s, prompt_tokens=prompt_tokens,
                            completion_tokens=answer.generated_tokens, created_at=self.clock(),
                            question=answer.question if text else None, answer=answer.text if text else None)
        self.store.log_exposure(exposure)
        return exposure

    def record_outcome(self, request_id: str, name: str, value: float | bool) -> None:
        self.store.record_outcome(request_id, name, value, now=self.clock())

    def report(self, name: str, *, folder: Path | None = None,
               per_unit: bool = False) -> tuple[ExperimentReport, list[Path]]:
        """The report of experiment `name` from the store; with `folder`, also written there (md, json, charts);
        `per_unit`: one observation per unit (see framework.experiments.report)."""
        report = build_report(self.get(name), self.store.exposures(name), self.store.outcomes(name),
                              per_unit=per_unit, now=self.clock())
        return report, (write_report(report, folder) if folder is not None else [])

    def status(self) -> list[dict]:
        """Each experiment: running or why not, its arms and weights, exposures so far (`ragtune ab list`)."""
        counts, now = self.store.counts(), self.clock()
        return [{"name": e.name, "running": e.running(now), "enabled": e.enabled, "unit": e.unit,
                 "start": e.start.isoformat() if e.start else None, "end": e.end.isoformat() if e.end else None,
                 "audience": list(e.audience), "control": e.control_arm, "exposures": counts.get(e.name, 0),
                 "arms": [{"name": a.name, "mode": a.mode, "weight": a.weight, "adapter": a.adapter,
                           "top_k": a.top_k, "prompt": a.prompt} for a in e.arms]} for e in self.configs]
