# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The fast training step (modeling_mgcma.training.fast_step): bounded batch shapes with little padding, no
host-synchronising op inside a training step, one compilation per bucket shape, the same numbers as the plain path."""

import datasets
import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from modeling_mgcma import MGCMAForEmotionClassification
from modeling_mgcma.training.collators import MGCMADataCollator
from modeling_mgcma.training.fast_step import (
    AUDIO_MULTIPLE,
    DEFAULT_AUDIO_BUCKETS,
    TOKEN_MULTIPLE,
    FastStepCollator,
    bucket_length,
    bucket_padding_fraction,
    bucketed_collator,
    choose_buckets,
    cuda_graph_refusals,
    install_fast_encoders,
    paired_token_lengths,
)
from modeling_mgcma.training.sampling import length_grouped_batches
from modeling_mgcma.training.trainer import MGCMATrainer, MGCMATrainingArguments


pytestmark = pytest.mark.usefixtures("one_torch_thread")

SYNC_OPS = ("aten::_local_scalar_dense", "aten::nonzero", "aten::masked_select")
WORDS = ["i", "am", "so", "happy", "sad", "angry", "today", "the", "weather", "is", "fine"]


def iemocap_like_seconds(n, seed=0):
    """Durations with IEMOCAP's shape: log-normal, mean ~4.5 s, a long tail cut at ~30 s, nothing under 0.6 s."""
    rng = np.random.default_rng(seed)
    seconds = rng.lognormal(mean=np.log(3.4), sigma=0.72, size=n)
    return np.clip(seconds, 0.6, 30.0)


def tiny_dataset(n=24, seed=0, rate=16_000, low=0.15, high=0.6):
    rng = np.random.default_rng(seed)
    rows = {"id": [], "audio": [], "text": [], "label": []}
    for i in range(n):
        samples = int(rate * rng.uniform(low, high))
        rows["id"].append(f"utt{i}")
        rows["audio"].append({"array": (0.1 * rng.standard_normal(samples)).astype(np.float32), "sampling_rate": rate})
        rows["text"].append(" ".join(rng.choice(WORDS, size=int(rng.integers(1, 9)))))
        rows["label"].append(i % 4)
    return datasets.Dataset.from_dict(rows)


def tiny_model(factory, **speech):
    from modeling_mgcma.training.from_scratch import speech_encoder_config

    torch.manual_seed(0)
    config = factory()
    if speech:
        config.speech_config = speech_encoder_config(**speech)
    return MGCMAForEmotionClassification(config)


def training_args(tmp_path, **overrides):
    values = dict(
        output_dir=str(tmp_path), per_device_train_batch_size=4, num_train_epochs=1, learning_rate=1e-3,
        logging_steps=1000, save_strategy="no", report_to="none", use_cpu=True, dataloader_num_workers=0,
        train_sampling_strategy="group_by_length", optim="adamw_torch_fused", disable_tqdm=True,
        max_grad_norm=1.0,
    )  # fmt: skip
    values.update(overrides)
    return MGCMATrainingArguments(**values)


# ---------------------------------------------------------------------------------------------------------------------
# Buckets: bounded shapes, little padding
# ---------------------------------------------------------------------------------------------------------------------


def iemocap_like_tokens(seconds, seed=0):
    """Transcript lengths in word pieces (with [CLS]/[SEP]) that grow with the duration, ~3.4 per second, noisy."""
    rng = np.random.default_rng(seed + 100)
    return np.clip(np.round(seconds * 3.4 + rng.normal(0, 4, len(seconds))), 1, 120).astype(int) + 2


def test_buckets_bound_the_shapes_and_keep_padding_low_over_two_epochs():
    rate, batch = 16_000, 4
    seconds = iemocap_like_seconds(4421)  # a training fold of IEMOCAP's 4 classes (5,531 utterances, one held out)
    lengths, tokens = np.round(seconds * rate).astype(int), iemocap_like_tokens(seconds)
    assert 4.0 < lengths.mean() / rate < 5.0 and lengths.max() / rate > 25
    buckets = choose_buckets(lengths, DEFAULT_AUDIO_BUCKETS, AUDIO_MULTIPLE)
    bounds = paired_token_lengths(lengths, tokens, buckets)
    assert len(buckets) == 16 and buckets[-1] >= lengths.max() and all(b % AUDIO_MULTIPLE == 0 for b in buckets)
    assert list(bounds) == sorted(bounds) and all(b % TOKEN_MULTIPLE == 0 for b in bounds)
    shapes, steps, padded, real = set(), 0, 0, 0
    for epoch in range(2):
        batches = length_grouped_batches(lengths, batch, seed=0, epoch=epoch)
        for indices in batches:
            values = lengths[np.asarray(indices)]
            width = bucket_length(int(values.max()), buckets, AUDIO_MULTIPLE)
            words = bounds[buckets.index(width)]
            assert tokens[np.asarray(indices)].max() <= words  # every transcript of the batch fits its token length
            shapes.add((len(indices), width, words))
            padded += width * len(indices)
            real += int(values.sum())
        steps += len(batches)
    padding = 1 - real / padded
    print(f"\n{steps} steps, {len(shapes)} batch shapes, padding {100 * padding:.1f} % of audio samples")
    assert len(shapes) <= 24 and len(shapes) < steps / 50
    assert padding <= 0.15
    assert abs(bucket_padding_fraction(batches, lengths, buckets, AUDIO_MULTIPLE) - padding) < 0.02  # one epoch ~ both
    # the same lengths give the same buckets (every fold and grid unit of a run reads the whole dataset's)
    assert choose_buckets(lengths, 16, AUDIO_MULTIPLE) == buckets


def test_bucket_choice_beats_even_quantiles_and_covers_the_longest():
    lengths = np.round(iemocap_like_seconds(2000, seed=1) * 16_000).astype(int)
    chosen = choose_buckets(lengths, 8, AUDIO_MULTIPLE)
    quantiles = tuple(int(np.ceil(q / AUDIO_MULTIPLE) * AUDIO_MULTIPLE) for q in np.quantile(lengths, np.linspace(0, 1, 9)[1:]))
    singles = [[i] for i in range(len(lengths))]
    assert bucket_padding_fraction(singles, lengths, chosen) <= bucket_padding_fraction(singles, lengths, quantiles)
    assert chosen[-1] >= lengths.max()
    assert choose_buckets(lengths, 0) == () and choose_buckets([], 4) == ()
    assert bucket_length(10**9, chosen, AUDIO_MULTIPLE) % AUDIO_MULTIPLE == 0  # beyond the last: rounded, not cut


def _train_recording_shapes(tmp_path, factory, processor, dataset, **overrides):
    model = tiny_model(factory)
    args = training_args(tmp_path, num_train_epochs=2, **overrides)
    collator = bucketed_collator(MGCMADataCollator(processor), model, dataset, args)
    shapes, steps = set(), []

    class Steps(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            steps.append(state.global_step)

    trainer = MGCMATrainer(model=model, args=args, train_dataset=dataset, data_collator=collator, callbacks=[Steps()])
    original = trainer.compute_loss

    def recording(model, inputs, *rest, **kw):
        if model.training:
            shapes.add((tuple(inputs["input_values"].shape), tuple(inputs["input_ids"].shape)))
        return original(model, inputs, *rest, **kw)

    trainer.compute_loss = recording
    trainer.train()
    return collator, shapes, steps


@pytest.mark.parametrize("token_buckets", [0, 2], ids=["tokens-paired", "tokens-apart"])
def test_a_tiny_run_presents_at_most_one_shape_per_bucket(tmp_path, tiny_config_factory, tiny_processor, token_buckets):
    dataset = tiny_dataset(48, low=0.1, high=1.2)
    collator, shapes, steps = _train_recording_shapes(tmp_path, tiny_config_factory, tiny_processor, dataset,
                                                      audio_buckets=4, token_buckets=token_buckets)  # fmt: skip
    audio, tokens, bounds = collator.audio_buckets, collator.token_buckets, collator.token_bounds
    print(f"\n{len(steps)} steps, {len(shapes)} batch shapes, audio buckets {audio}, tokens {tokens or bounds}")
    assert len(steps) == 24 and len(audio) == 4
    assert {s[0][1] for s in shapes} <= set(audio)
    # batch size 4 everywhere (48 utterances): at most one shape per audio bucket (paired token lengths), or per
    # (audio, token) bucket pair
    if token_buckets == 0:
        assert not tokens and len(bounds) == 4
        assert {(s[0][1], s[1][1]) for s in shapes} <= set(zip(audio, bounds))
        assert len(shapes) <= len(audio) < len(steps)
    else:
        assert len(tokens) == 2 and not bounds
        assert {s[1][1] for s in shapes} <= set(tokens)
        assert len(shapes) <= len(audio) * len(tokens) < len(steps)


def test_compiled_steps_compile_once_per_bucket(tmp_path, tiny_config_factory, tiny_processor):
    """Under --torch_compile (aot_eager on a CPU) two epochs compile the model's forward once per batch shape."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    dataset = tiny_dataset(48, low=0.1, high=1.2)
    collator, shapes, steps = _train_recording_shapes(
        tmp_path, tiny_config_factory, tiny_processor, dataset, audio_buckets=4, torch_compile=True,
        torch_compile_backend="aot_eager",
    )  # fmt: skip
    graphs, breaks = counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())
    torch._dynamo.reset()
    print(f"\n{len(steps)} steps, {len(shapes)} batch shapes, {graphs} graphs compiled, {breaks} graph breaks")
    assert len(steps) == 24 and 1 < len(shapes) <= len(collator.audio_buckets)
    assert graphs >= len(shapes)  # the counter sees the compilations: every new shape compiles once
    assert graphs <= len(collator.audio_buckets)  # one graph per shape: no graph break, no recompilation


# ---------------------------------------------------------------------------------------------------------------------
# The collator's checks and masks; the patched encoders compute what transformers' do
# ---------------------------------------------------------------------------------------------------------------------


def test_collator_checks_what_the_model_checked(tiny_config_factory, tiny_processor):
    model = tiny_model(tiny_config_factory)
    collator = FastStepCollator(MGCMADataCollator(tiny_processor), model)
    rows = [dict(zip(("audio", "text", "label"), values)) for values in
            [({"array": np.zeros(4000, np.float32), "sampling_rate": 16000}, "i am", 0),
             ({"array": np.zeros(4000, np.float32), "sampling_rate": 16000}, "sad", 9)]]  # fmt: skip
    with pytest.raises(ValueError, match=r"`labels` must lie in \[0, 4\), got values in \[0, 9\]"):
        collator(rows)
    rows[1]["label"] = 1
    rows[1]["audio"] = {"array": np.zeros(10, np.float32), "sampling_rate": 16000}
    with pytest.raises(ValueError, match="too short for the speech encoder"):
        collator(rows)
    rows[0]["id"], rows[1]["id"] = "Ses01F_a", "Ses01F_b"  # rows with ids: the error names the batch's utterances
    with pytest.raises(ValueError, match=r"too short .* utterances, in order: \['Ses01F_a', 'Ses01F_b'\]"):
        collator(rows)


@pytest.mark.parametrize("name, value", [("audio_buckets", -1), ("token_buckets", 2.5), ("audio_buckets", True),
                                         ("fast_step", "yes")])  # fmt: skip
def test_bad_fast_step_settings_are_refused_by_name(tmp_path, name, value):
    with pytest.raises(ValueError, match=f"--{name} must be .*got {value!r}"):
        training_args(tmp_path, **{name: value})


def test_spec_augment_masks_follow_the_encoder_config(tiny_config_factory, tiny_processor):
    model = tiny_model(tiny_config_factory, mask_time_prob=0.3, mask_time_length=3)
    collator = FastStepCollator(MGCMADataCollator(tiny_processor), model, audio_buckets=(16000,))
    dataset = tiny_dataset(4, low=0.2, high=0.5)
    np.random.seed(0)
    batch = collator([dataset[i] for i in range(4)])
    masks = batch["mask_time_indices"]
    frames = model.mgcma.speech_encoder._get_feat_extract_output_lengths(torch.tensor(16000))
    real = model.mgcma.speech_encoder._get_feat_extract_output_lengths(batch["speech_attention_mask"].sum(-1))
    assert masks.shape == (4, int(frames)) and masks.dtype == torch.bool
    assert masks.any(-1).all()  # every utterance has a masked span at p = 0.3
    beyond = torch.arange(masks.shape[1])[None, :] >= real[:, None]
    assert not masks[beyond].any()  # spans stay in the real frames, as transformers draws them
    # the masked share is what transformers' own draw gives (same function, same arguments)
    from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices

    frame_mask = (~beyond).long()
    np.random.seed(0)
    own = _compute_mask_indices(tuple(masks.shape), 0.3, 3, attention_mask=frame_mask, min_masks=2)
    assert np.array_equal(own, masks.numpy())


@pytest.mark.parametrize("stable", [True, False])
def test_patched_encoders_compute_the_same_outputs(tiny_config_factory, tiny_batch, stable):
    speech = dict(do_stable_layer_norm=stable, feat_extract_norm="layer" if stable else "group", mask_time_prob=0.05,
                  layerdrop=0.0)
    reference, patched = tiny_model(tiny_config_factory, **speech), tiny_model(tiny_config_factory, **speech)
    assert "speech encoder Wav2Vec2Model" in install_fast_encoders(patched)[0]
    reference.eval(), patched.eval()
    with torch.no_grad():
        expected, got = reference(**tiny_batch), patched(**tiny_batch)
    torch.testing.assert_close(got.logits, expected.logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.loss, expected.loss, rtol=1e-5, atol=1e-6)
    # training mode with the same SpecAugment mask given to both, layerdrop off: the same numbers and gradients
    reference.train(), patched.train()
    mask = torch.zeros(4, expected.speech_mask.shape[1], dtype=torch.bool)
    mask[:, 2:5] = True
    outputs = []
    for model in (reference, patched):
        torch.manual_seed(1)  # the same dropout draws
        hidden = model.mgcma.speech_encoder(tiny_batch["input_values"], attention_mask=tiny_batch["speech_attention_mask"],
                                            mask_time_indices=mask).last_hidden_state  # fmt: skip
        hidden.sum().backward()
        outputs.append((hidden, model.mgcma.speech_encoder.masked_spec_embed.grad))
    torch.testing.assert_close(outputs[1][0], outputs[0][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(outputs[1][1], outputs[0][1], rtol=1e-5, atol=1e-6)


def test_layerdrop_keeps_its_rate_without_a_python_branch(tiny_config_factory, tiny_batch):
    model = tiny_model(tiny_config_factory, layerdrop=0.5, num_layers=1, attention_dropout=0.0)
    install_fast_encoders(model)
    model.train()
    encoder = model.mgcma.speech_encoder
    for module in encoder.modules():  # dropout off: LayerDrop is the only randomness left
        if isinstance(module, torch.nn.Dropout):
            module.eval()
    torch.manual_seed(0)
    outputs = set()
    for _ in range(40):
        with torch.no_grad():
            hidden = encoder(tiny_batch["input_values"], attention_mask=tiny_batch["speech_attention_mask"])
        outputs.add(round(float(hidden.last_hidden_state.double().abs().sum()), 3))
    assert len(outputs) == 2  # the one layer kept or dropped; both happen at layerdrop 0.5


# ---------------------------------------------------------------------------------------------------------------------
# No host waits inside a training step
# ---------------------------------------------------------------------------------------------------------------------


def _under(event, name: str) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name == name:
            return True
        parent = parent.cpu_parent
    return False


class ProfileOneStep(TrainerCallback):
    """Profiles the whole of one training step (inputs to device, forward, backward, clip, optimizer, scheduler).

    On a CPU, the fused AdamW kernel reads each parameter's step counter with an `item()` (`aten::_fused_adamw_`
    -> `aten::item` -> `aten::_local_scalar_dense`): a read of host memory, which waits for nothing; on CUDA the same
    kernel reads the counters on the device. Those are counted apart (`optimizer_cpu_reads`), every other one is a
    read that would wait for the device on a GPU."""

    def __init__(self, step):
        self.step, self.profiler, self.counts = step, None, None

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self.profiler.__enter__()

    def on_step_end(self, args, state, control, **kwargs):
        if self.profiler is not None and self.counts is None:
            self.profiler.__exit__(None, None, None)
            events = self.profiler.events()
            syncs = [e for e in events if e.name in SYNC_OPS]
            optimizer = [e for e in syncs if _under(e, "aten::_fused_adamw_")]
            self.counts = {name: sum(e.name == name and e not in optimizer for e in syncs) for name in SYNC_OPS}
            self.counts["optimizer_cpu_reads"] = len(optimizer)
            self.counts["ops"] = len(events)


def _host_syncs(tmp_path, factory, processor, fast_step, objective=None, **speech):
    dataset = tiny_dataset(16)
    model = tiny_model(factory, **speech)
    args = training_args(tmp_path, fast_step=fast_step, logging_steps=1000, **(objective or {}))
    collator = bucketed_collator(MGCMADataCollator(processor), model, dataset, args)
    probe = ProfileOneStep(step=2)  # a step that is not a logging step (and not the first)
    MGCMATrainer(model=model, args=args, train_dataset=dataset, data_collator=collator, callbacks=[probe]).train()
    return probe.counts


@pytest.mark.parametrize(
    "objective",
    [{}, {"alignment_gradient_balance": 1.0, "alignment_gradient_projection": True, "alignment_loss_warmup": 0.5}],
    ids=["paper-objective", "balanced-projected-warmed-up"],
)
def test_a_training_step_makes_no_host_synchronising_op(tmp_path, tiny_config_factory, tiny_processor, objective):
    speech = dict(mask_time_prob=0.2, mask_time_length=2, layerdrop=0.1, feat_extract_norm="group",
                  do_stable_layer_norm=False)  # wav2vec2-base's arrangement, with SpecAugment and LayerDrop on
    fast = _host_syncs(tmp_path / "fast", tiny_config_factory, tiny_processor, True, objective, **speech)
    plain = _host_syncs(tmp_path / "plain", tiny_config_factory, tiny_processor, False, objective, **speech)
    print(f"\nhost-synchronising ops in one training step: fast {fast}, plain {plain}")
    assert fast["ops"] > 500  # the step was profiled
    assert all(fast[name] == 0 for name in SYNC_OPS), fast
    assert sum(plain[name] for name in SYNC_OPS) > 5  # what the plain path does (the test can see a sync)


def test_cuda_graphs_are_refused_on_a_cpu(tmp_path, tiny_config_factory):
    args = training_args(tmp_path, gradient_checkpointing=True)
    reasons = cuda_graph_refusals(args, tiny_model(tiny_config_factory))
    assert any("need a CUDA device" in r for r in reasons) and any("checkpointing" in r for r in reasons)
    balanced = training_args(tmp_path, audio_buckets=0, alignment_gradient_balance=1.0, optim="sgd")
    reasons = cuda_graph_refusals(balanced, tiny_model(tiny_config_factory), device_type="cuda")
    assert len(reasons) == 3 and "unbounded" in reasons[0] and "sgd" in reasons[1] and "autograd.grad" in reasons[2]
    one_encoder = training_args(tmp_path, alignment_gradient_encoders="speech")
    reasons = cuda_graph_refusals(one_encoder, tiny_model(tiny_config_factory), device_type="cuda")
    assert len(reasons) == 1 and "autograd.grad" in reasons[0]
    assert cuda_graph_refusals(training_args(tmp_path), tiny_model(tiny_config_factory), device_type="cuda") == []
    with pytest.raises(ValueError, match="--cuda_graphs cannot capture this training step: CUDA graphs need"):
        MGCMATrainer(model=tiny_model(tiny_config_factory), args=training_args(tmp_path, cuda_graphs=True))


def test_the_fast_step_trains_the_same_model_as_the_plain_step(tmp_path, tiny_config_factory, tiny_processor):
    """Without buckets (the same batch shapes), SpecAugment or LayerDrop: the same losses and the same weights after
    a few steps with gradient clipping, with the fast step (host-side checks, patched encoders, its clipping, the
    skipped train() walk) and without."""
    dataset = tiny_dataset(16)
    trained = {}
    for fast in (True, False):
        model = tiny_model(tiny_config_factory)
        args = training_args(tmp_path / str(fast), fast_step=fast, audio_buckets=0, max_grad_norm=0.5, logging_steps=1,
                             seed=0)  # fmt: skip
        trainer = MGCMATrainer(model=model, args=args, train_dataset=dataset,
                               data_collator=bucketed_collator(MGCMADataCollator(tiny_processor), model, dataset, args))
        trainer.train()
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        norms = [entry["grad_norm"] for entry in trainer.state.log_history if "grad_norm" in entry]
        trained[fast] = (losses, norms, {n: p.detach().clone() for n, p in model.named_parameters()})
    assert len(trained[True][0]) == 4 and trained[True][0] == pytest.approx(trained[False][0], rel=1e-5)
    assert trained[True][1] == pytest.approx(trained[False][1], rel=1e-4) and max(trained[True][1]) > 0.5  # clipped
    for name, value in trained[True][2].items():
        torch.testing.assert_close(value, trained[False][2][name], rtol=1e-4, atol=1e-6, msg=name)
