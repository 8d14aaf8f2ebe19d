# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The dry-run cost estimate: step timing with warm-up excluded (fake clock) and the multiplication of the grid."""

import pytest

from modeling_mgcma.experiments.cost_estimate import (
    estimate_grid_cost,
    format_cost_table,
    time_steps,
    trainer_step_function,
)


class FakeClock:
    """Each step advances time by its own known duration; the clock is read around every timed step."""

    def __init__(self, durations):
        self.now, self.durations, self.calls = 0.0, list(durations), []

    def __call__(self):
        return self.now

    def step(self, index):
        self.calls.append(index)
        self.now += self.durations[index]


def test_time_steps_excludes_warmup_and_times_each_step():
    clock = FakeClock([30.0, 12.0, 1.0, 2.0, 3.0])  # two slow warm-up steps, then 1, 2, 3 s
    timing = time_steps(clock.step, 3, warmup_steps=2, clock=clock)
    assert clock.calls == [0, 1, 2, 3, 4]
    assert timing.seconds == [1.0, 2.0, 3.0]
    assert timing.mean == 2.0 and timing.median == 2.0


def test_time_steps_synchronizes_around_each_timed_step():
    clock, events = FakeClock([1.0, 1.0]), []
    time_steps(lambda i: (events.append(f"step{i}"), clock.step(i)), 1, warmup_steps=1, clock=clock,
               synchronize=lambda: events.append("sync"))  # fmt: skip
    assert events == ["step0", "sync", "step1", "sync"]


def test_estimate_multiplies_out_the_grid():
    # 0.5 s/step, 100 steps/epoch, 10 epochs = 500 s training; eval 0.01 s x (50 x 10 + 200) = 7 s per fold
    cost = estimate_grid_cost(0.5, 100, 10, folds=5, settings=["S0", "S1"], seconds_per_eval_utterance=0.01,
                              eval_utterances_per_epoch=50, test_utterances_per_fold=200)  # fmt: skip
    assert cost.hours_per_fold == pytest.approx(507 / 3600)
    assert cost.hours_per_setting == pytest.approx(5 * 507 / 3600)
    assert cost.total_hours == pytest.approx(10 * 507 / 3600) and cost.units == 10
    table = format_cost_table(cost, device="cpu")
    assert "2 settings x 5 folds = 10 trainings" in table and f"{10 * 507 / 3600:10.2f} h" in table
    assert estimate_grid_cost(1.0, 10, 1, 5, 10).units == 50
    with pytest.raises(ValueError, match="seconds_per_step"):
        estimate_grid_cost(-1.0, 10, 1, 5, 1)


def test_trainer_step_function_runs_real_optimisation_steps(tmp_path):
    torch = pytest.importorskip("torch")
    from transformers import Trainer, TrainingArguments

    class Regression(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(3, 1)

        def forward(self, x, labels):
            return {"loss": torch.nn.functional.mse_loss(self.linear(x).squeeze(-1), labels)}

    torch.manual_seed(0)
    rows = [{"x": torch.randn(3), "labels": torch.tensor(1.0)} for _ in range(5)]
    model = Regression()
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, learning_rate=0.1,
                             report_to=[], use_cpu=True)  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=rows)
    before = model.linear.weight.detach().clone()
    step = trainer_step_function(trainer, num_training_steps=10)
    timing = time_steps(step, 4, warmup_steps=1)  # 5 steps over 3 batches per epoch: the loader restarts
    assert len(timing.seconds) == 4 and all(s > 0 for s in timing.seconds)
    assert not torch.equal(model.linear.weight, before)  # the optimizer really stepped
    assert trainer.lr_scheduler.get_last_lr()[0] < 0.1  # and so did the schedule (linear decay)


def test_dry_run_estimate_multiplies_measured_steps_out_over_the_grid(tmp_path):
    torch = pytest.importorskip("torch")
    from transformers import Trainer, TrainingArguments

    from modeling_mgcma.experiments.cost_estimate import dry_run_estimate

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(3, 2)

        def forward(self, x, labels):
            logits = self.linear(x)
            return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}

    rows = [{"x": torch.randn(3), "labels": torch.tensor(i % 2)} for i in range(10)]
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, per_device_eval_batch_size=2,
                             num_train_epochs=7, eval_strategy="epoch", report_to=[], use_cpu=True)  # fmt: skip
    trainer = Trainer(model=Classifier(), args=args, train_dataset=rows, eval_dataset=rows[:6])
    # a fake clock: every reading advances it by one second, so each timed call takes exactly 1 s
    ticks = iter(range(10**6))
    cost, timing, table = dry_run_estimate(trainer, ["S0", "S1", "S2"], 5, test_utterances_per_fold=20, num_steps=2,
                                           clock=lambda: float(next(ticks)))  # fmt: skip
    assert timing.seconds == [1.0, 1.0]
    steps_per_epoch = 3  # 10 rows, batch 4
    assert cost.train_seconds_per_fold == pytest.approx(1.0 * steps_per_epoch * 7)
    # one eval batch of 2 utterances took 1 s: 0.5 s per utterance, 6 validation utterances x 7 epochs + 20 test
    assert cost.eval_seconds_per_fold == pytest.approx(0.5 * (6 * 7 + 20))
    assert cost.units == 15 and cost.total_hours == pytest.approx(15 * (21 + 31) / 3600)
    assert "per setting (5 folds)" in table and "3 steps per epoch, 7 epochs" in table
    # max_steps counts optimizer steps: with 2 micro-batches each, 6 steps are 12 timed micro-batches
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=6,
                             gradient_accumulation_steps=2, report_to=[], use_cpu=True)  # fmt: skip
    trainer = Trainer(model=Classifier(), args=args, train_dataset=rows)
    cost, _, _ = dry_run_estimate(trainer, ["S0"], 1, test_utterances_per_fold=0, num_steps=2, clock=lambda: float(next(ticks)))
    assert cost.train_seconds_per_fold == pytest.approx(1.0 * 6 * 2)
