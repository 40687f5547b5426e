"""What the Trainer reports while it runs: a progress bar with loss and tokens/s, and
the experiment trackers named in `finetune.report_to`.

The bar reads the Trainer's own token count (`num_input_tokens_seen`, summed over all
processes under DDP), so tokens/s is the real throughput of this run, resumed or not.

Example:
    >>> check_report_to([])
    'none'
"""

from __future__ import annotations

import time

from transformers import TrainerCallback

from framework.runtime.progress import progress_bar

# Name in config -> the pip package that provides it.
TRACKER_PACKAGES = {
    "tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb", "comet_ml": "comet-ml",
    "clearml": "clearml", "neptune": "neptune", "dvclive": "dvclive", "trackio": "trackio",
    "swanlab": "swanlab", "azure_ml": "azureml-core", "codecarbon": "codecarbon",
}


def check_report_to(names: list[str]) -> list[str] | str:
    """The Trainer's `report_to` for config's list; an uninstalled tracker is an error naming its package."""
    if not names:
        return "none"
    from transformers.integrations import get_available_reporting_integrations

    available = set(get_available_reporting_integrations())
    missing = [n for n in names if n not in available]
    if missing:
        installs = " ".join(TRACKER_PACKAGES.get(n, n) for n in missing)
        raise ValueError(
            f"finetune.report_to names {missing}, which is not installed here (installed trackers: "
            f"{sorted(available) or 'none'}); install it with `pip install {installs}` or remove it from "
            "finetune.report_to"
        )
    return list(names)


class ThroughputCallback(TrainerCallback):
    """Tokens and seconds of this process's optimizer steps: evaluation and checkpoint saving
    are left out, and a resumed run counts only its own part."""

    def __init__(self) -> None:
        self.step_start = 0.0
        self.first_tokens = 0
        self.tokens = 0
        self.seconds = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.first_tokens = state.num_input_tokens_seen

    def on_step_begin(self, args, state, control, **kwargs):
        self.step_start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.tokens = state.num_input_tokens_seen - self.first_tokens
        self.seconds += time.perf_counter() - self.step_start

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


class ProgressCallback(TrainerCallback):
    """A rich progress bar over optimizer steps showing the latest loss and tokens/s (main process only)."""

    def __init__(self, throughput: ThroughputCallback, description: str = "finetune") -> None:
        self.throughput = throughput
        self.description = description
        self.bar = None
        self.task = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        from rich.progress import TextColumn

        self.bar = progress_bar(TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]} tok/s"))
        self.bar.start()
        self.task = self.bar.add_task(self.description, total=state.max_steps, completed=state.global_step,
                                      loss="-", speed="-")

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(self.task, completed=state.global_step,
                            speed=f"{self.throughput.tokens_per_second:.0f}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs:
            if "loss" in logs:
                self.bar.update(self.task, loss=f"{logs['loss']:.4f}")
            if "eval_loss" in logs:
                self.bar.console.print(f"epoch {state.epoch:.2f}: eval loss {logs['eval_loss']:.4f}")

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
