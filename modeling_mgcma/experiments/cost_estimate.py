# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Know the cost of a grid before starting it: time a few real training steps, then multiply out
(settings x folds x epochs x steps), plus evaluation, into hours per fold, per setting and in total."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


@dataclass
class StepTiming:
    """Seconds of each timed call (warm-up calls excluded) and their mean and median."""

    seconds: list[float]
    warmup_steps: int

    @property
    def mean(self) -> float:
        return sum(self.seconds) / len(self.seconds)

    @property
    def median(self) -> float:
        ordered = sorted(self.seconds)
        middle = len(ordered) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def time_steps(
    step: Callable[[int], object],
    num_steps: int,
    *,
    warmup_steps: int = 2,
    clock: Callable[[], float] = time.perf_counter,
    synchronize: Callable[[], None] | None = None,
) -> StepTiming:
    """Call ``step(i)`` for ``warmup_steps + num_steps`` steps and time the last `num_steps` one by one.

    Warm-up steps are excluded: the first calls pay for lazy initialisation, kernel selection and allocator growth,
    which a long run pays once. `step` is anything that performs one full optimisation step, e.g. a closure over a
    `Trainer` that runs ``trainer.training_step(model, batch)`` and ``optimizer.step()``. On an accelerator pass
    ``synchronize=torch.cuda.synchronize`` (asynchronous kernels would otherwise be timed at launch);
    it is called before each clock reading. `clock` is injectable for tests.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}.")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}.")
    for i in range(warmup_steps):
        step(i)
    seconds = []
    for i in range(warmup_steps, warmup_steps + num_steps):
        if synchronize is not None:
            synchronize()
        start = clock()
        step(i)
        if synchronize is not None:
            synchronize()
        seconds.append(clock() - start)
    return StepTiming(seconds, warmup_steps)


def trainer_step_function(trainer, num_training_steps: int = 1000) -> Callable[[int], float]:
    """``step(i)`` for :func:`time_steps` that runs one real optimisation step of a `transformers.Trainer`: the next
    batch of its train DataLoader (so decoding, resampling and tokenising count, as they do in training), forward,
    backward (`Trainer.training_step`), optimizer and scheduler step. It returns the batch's loss.

    One step is one micro-batch: with gradient accumulation, pass the number of micro-batches per epoch as
    `steps_per_epoch` to :func:`estimate_grid_cost`. The weights change, so time a model you then discard.
    `num_training_steps` only shapes the learning-rate schedule created here.
    """
    if trainer.optimizer is None or trainer.lr_scheduler is None:
        trainer.create_optimizer_and_scheduler(num_training_steps=num_training_steps)
    model, loader = trainer.model, trainer.get_train_dataloader()
    # set by the Trainer's own loop for each accumulation window; here every micro-batch is its own step
    trainer.current_gradient_accumulation_steps = 1
    batches = iter(loader)

    def step(_index: int) -> float:
        nonlocal batches
        try:
            batch = next(batches)
        except StopIteration:  # a small training set: start another epoch
            batches = iter(loader)
            batch = next(batches)
        loss = trainer.training_step(model, batch)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        model.zero_grad(set_to_none=True)
        return float(loss)

    return step


@dataclass
class GridCost:
    settings: list[str]
    folds: int
    train_seconds_per_fold: float
    eval_seconds_per_fold: float

    @property
    def hours_per_fold(self) -> float:
        return (self.train_seconds_per_fold + self.eval_seconds_per_fold) / 3600.0

    @property
    def hours_per_setting(self) -> float:
        return self.hours_per_fold * self.folds

    @property
    def total_hours(self) -> float:
        return self.hours_per_setting * len(self.settings)

    @property
    def units(self) -> int:
        return self.folds * len(self.settings)


def estimate_grid_cost(
    seconds_per_step: float,
    steps_per_epoch: int,
    epochs: float,
    folds: int,
    settings: Sequence[str] | int,
    *,
    seconds_per_eval_utterance: float = 0.0,
    eval_utterances_per_epoch: int = 0,
    test_utterances_per_fold: int = 0,
) -> GridCost:
    """Cost of ``len(settings) x folds`` trainings of ``epochs x steps_per_epoch`` steps each.

    Evaluation per fold: the validation split once per epoch (`eval_utterances_per_epoch`, as with
    ``eval_strategy="epoch"``) plus one pass over the test split, each utterance costing
    `seconds_per_eval_utterance`. Every (setting, fold) unit is assumed to cost the same: the ablations that switch
    modules off are somewhat cheaper, so the total is an upper estimate for Table II's grid.
    """
    if isinstance(settings, int):
        settings = [f"setting_{i}" for i in range(settings)]
    settings = list(settings)
    for name, value in (("seconds_per_step", seconds_per_step), ("seconds_per_eval_utterance", seconds_per_eval_utterance)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}.")
    if steps_per_epoch < 1 or epochs <= 0 or folds < 1 or not settings:
        raise ValueError(
            f"need steps_per_epoch >= 1, epochs > 0, folds >= 1 and at least one setting, got {steps_per_epoch}, "
            f"{epochs}, {folds} and {settings}."
        )
    train = seconds_per_step * steps_per_epoch * epochs
    evaluation = seconds_per_eval_utterance * (eval_utterances_per_epoch * epochs + test_utterances_per_fold)
    return GridCost(settings, folds, train, evaluation)


def format_cost_table(cost: GridCost, device: str | None = None) -> str:
    """A plain-text table of the estimate, for printing before a run starts."""
    rows = [
        ("per fold (train + eval)", cost.hours_per_fold),
        (f"per setting ({cost.folds} folds)", cost.hours_per_setting),
        (f"total ({len(cost.settings)} settings x {cost.folds} folds = {cost.units} trainings)", cost.total_hours),
    ]
    width = max(len(label) for label, _ in rows)
    header = "Estimated cost" + (f" on {device}" if device else "")
    lines = [header, "-" * len(header)]
    lines += [f"{label:<{width}}  {hours:10.2f} h" for label, hours in rows]
    lines.append(f"{'settings':<{width}}  {', '.join(cost.settings)}")
    lines.append(
        f"(one fold: {cost.train_seconds_per_fold / 3600:.2f} h training, {cost.eval_seconds_per_fold / 3600:.2f} h "
        "evaluation; measured step times, multiplied out)"
    )
    return "\n".join(lines)


def _seconds_per_eval_utterance(trainer, clock: Callable[[], float], synchronize) -> float:
    """Time one batch of the evaluation DataLoader through `Trainer.prediction_step` (the first batch, after one
    untimed warm-up pass over it); seconds per utterance."""
    loader = trainer.get_eval_dataloader()
    batch = next(iter(loader))
    size = len(batch["labels"]) if "labels" in batch else loader.batch_size or 1
    trainer.model.eval()
    trainer.prediction_step(trainer.model, batch, prediction_loss_only=False)
    if synchronize is not None:
        synchronize()
    start = clock()
    trainer.prediction_step(trainer.model, batch, prediction_loss_only=False)
    if synchronize is not None:
        synchronize()
    seconds = clock() - start
    trainer.model.train()
    return seconds / size


def dry_run_estimate(
    trainer,
    settings: Sequence[str],
    folds: int,
    *,
    test_utterances_per_fold: int,
    num_steps: int = 3,
    warmup_steps: int = 1,
    clock: Callable[[], float] = time.perf_counter,
    echo: bool = True,
) -> tuple[GridCost, StepTiming, str]:
    """``--dry_run``: time `num_steps` real optimisation steps of `trainer` (one fold's trainer, at the run's
    settings: model, batch size, precision, device, DataLoader workers) and one evaluation batch, then multiply out
    ``len(settings) x folds`` trainings of ``trainer.args.num_train_epochs`` epochs (or ``max_steps``), with the
    validation split evaluated every epoch when ``eval_strategy="epoch"`` and the test split once per fold.

    Returns the estimate, the step timing and the table, which is also printed on the main process with `echo`. The
    trainer's model is changed by the timed steps: build it for the estimate and discard it."""
    import torch

    device = trainer.args.device
    synchronize = torch.cuda.synchronize if device.type == "cuda" else None
    steps_per_epoch = len(trainer.get_train_dataloader())
    timing = time_steps(trainer_step_function(trainer), num_steps, warmup_steps=warmup_steps, clock=clock,
                        synchronize=synchronize)  # fmt: skip
    if trainer.args.max_steps and trainer.args.max_steps > 0:
        # max_steps counts optimizer steps; the DataLoader yields gradient_accumulation_steps batches per step
        epochs = trainer.args.max_steps * trainer.args.gradient_accumulation_steps / steps_per_epoch
    else:
        epochs = float(trainer.args.num_train_epochs)
    evaluates_each_epoch = trainer.eval_dataset is not None and str(getattr(trainer.args.eval_strategy, "value",
                                                                            trainer.args.eval_strategy)) == "epoch"  # fmt: skip
    eval_seconds = _seconds_per_eval_utterance(trainer, clock, synchronize) if trainer.eval_dataset is not None else 0.0
    cost = estimate_grid_cost(
        timing.median,
        steps_per_epoch,
        epochs,
        folds,
        settings,
        seconds_per_eval_utterance=eval_seconds,
        eval_utterances_per_epoch=len(trainer.eval_dataset) if evaluates_each_epoch else 0,
        test_utterances_per_fold=test_utterances_per_fold,
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device} ({torch.get_num_threads()} threads)"
    table = format_cost_table(cost, name)
    table += (f"\n(median of {num_steps} timed steps after {warmup_steps} warm-up: {timing.median:.3f} s per step of "
              f"batch {trainer.args.per_device_train_batch_size}; {steps_per_epoch} steps per epoch, {epochs:g} epochs; "
              f"{eval_seconds:.4f} s per evaluated utterance)")  # fmt: skip
    if echo and trainer.args.process_index == 0:
        print(table)
    return cost, timing, table


def format_concurrency_plan(
    cost: GridCost,
    *,
    concurrent: int,
    gpus: int = 1,
    launcher: str = "local",
    jobs: int | None = None,
    array_parallelism: int | None = None,
    seconds_per_step: Mapping[int, float] | None = None,
) -> str:
    """How long the grid takes with its units run side by side: `concurrent` units per GPU on `gpus` GPUs
    (``--launcher local``), or `jobs` SLURM jobs of which `array_parallelism` run at once (``--launcher slurm``).

    `seconds_per_step` maps a number of units running at once to the median step time each measured
    (``{1: 0.21, 4: 0.35}``). With a measurement for `concurrent`, the wall time uses it; with only N=1 measured,
    the figure assumes that N units run as fast as one alone and is said to be a lower bound on the wall time."""
    if concurrent < 1 or gpus < 1:
        raise ValueError(f"need concurrent >= 1 and gpus >= 1, got {concurrent} and {gpus}.")
    measured = dict(seconds_per_step or {})
    units = cost.units if jobs is None else jobs
    lines = ["Concurrency", "-----------"]
    if launcher in ("slurm", "submitit_local"):
        running = min(units, array_parallelism or units)
        waves = -(-units // running)
        lines.append(f"{units} jobs (one unit each, {gpus} GPU(s) per job), {running} at once: {waves} wave(s) of "
                     f"{cost.hours_per_fold:.2f} h = {waves * cost.hours_per_fold:.2f} h wall time, queueing not "
                     "counted")  # fmt: skip
        return "\n".join(lines)
    slots = concurrent * gpus
    base = measured.get(1)
    slowdown = measured[concurrent] / base if base and concurrent in measured else None
    per_unit_hours = cost.hours_per_fold * (slowdown or 1.0)
    waves = -(-units // slots)
    wall = waves * per_unit_hours
    lines.append(f"{concurrent} unit(s) at once per GPU x {gpus} GPU(s) = {slots} at once: {units} units in {waves} "
                 f"wave(s) of {per_unit_hours:.2f} h = {wall:.2f} h wall time")  # fmt: skip
    if concurrent == 1:
        lines.append("(one unit at a time: the measured step time, multiplied out)")
    elif slowdown is not None:
        lines.append(f"(measured with {concurrent} units at once: {measured[concurrent]:.3f} s per step each vs "
                     f"{base:.3f} s alone, x{slowdown:.2f} per step; aggregate throughput x{concurrent / slowdown:.2f} "
                     "of one unit)")  # fmt: skip
    else:
        lines.append(f"(measured for N=1 only: this assumes {concurrent} units at once each run as fast as one alone, so "
                     f"the wall time is a lower bound; --dry_run --grid_workers {concurrent} measures them at once)")
    return "\n".join(lines)


__all__ = [
    "StepTiming",
    "format_concurrency_plan",
    "GridCost",
    "time_steps",
    "trainer_step_function",
    "estimate_grid_cost",
    "format_cost_table",
    "dry_run_estimate",
]
