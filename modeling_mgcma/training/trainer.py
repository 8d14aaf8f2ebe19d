# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Training MGCMA with the `transformers.Trainer`: the training arguments, the trainer and multi-GPU helpers.

* `MGCMATrainingArguments` adds the training-regime settings (`freeze_*`, `gather_distributed_negatives`) and the
  training objective's (`alignment_gradient_balance` and `alignment_gradient_balance_on`,
  `alignment_gradient_projection`, `alignment_gradient_encoders`, `alignment_loss_warmup`) to `TrainingArguments`;
  `MGCMATrainer` applies them (with plain `TrainingArguments`: their defaults). The model returns its loss components
  and the paper's weighted sum; the trainer builds each step's training loss from the components
  (`modeling_mgcma.training.alignment_gradient.alignment_objective`).
* `MGCMATrainer` logs the loss components L_CE, L_DA and L_IA next to the total, averaged over each logging
  interval; evaluation reports its own averages (``eval_loss_ce`` ...) without touching the training ones.
* The data collators live in `modeling_mgcma.training.collators`; the distributed gather of the contrastive negatives in
  the loss path of `modeling_mgcma.modeling_mgcma` (`gather_with_grad`).
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import Trainer, TrainingArguments

from ..processing_mgcma import TARGET_SAMPLING_RATE
from .alignment_gradient import (
    ALIGNMENT_GRADIENT_ENCODERS,
    BALANCE_SCOPES,
    alignment_exempt_parameters,
    alignment_module_parameters,
    alignment_objective,
    other_parameters,
    shared_parameters,
)
from .fast_step import (
    FastStepArguments,
    FastStepTrainerMixin,
    check_fast_step_options,
    fast_step_on,
    install_fast_encoders,
)
from .loss_schedule import alignment_loss_scale


logger = logging.getLogger(__name__)

LOSS_COMPONENTS = ("loss_ce", "loss_da", "loss_ia")


def _on_cpu(module: nn.Module) -> bool:
    return all(p.device.type == "cpu" for p in module.parameters())


# ---------------------------------------------------------------------------------------------------------------------
# Multi-GPU checks
# ---------------------------------------------------------------------------------------------------------------------


def refuse_data_parallel(args) -> None:
    """Raise when the Trainer would wrap the model in `nn.DataParallel` (one process seeing several GPUs).

    Under DataParallel every loss component comes back as a per-GPU vector and each replica computes the contrastive
    losses over its own rows only, a different objective. One process per GPU (DDP) is what MGCMA supports.
    """
    n_gpu = args.n_gpu
    if n_gpu > 1:
        raise RuntimeError(
            f"{n_gpu} GPUs are visible to a single process, so the Trainer would train with nn.DataParallel, under "
            "which MGCMA's contrastive losses would see only each GPU's share of the batch. Start one process per "
            f"GPU instead: `accelerate launch --multi_gpu --num_processes {n_gpu} run_mgcma.py ...` or "
            f"`torchrun --nproc_per_node {n_gpu} run_mgcma.py ...`; or train on one GPU with CUDA_VISIBLE_DEVICES=0."
        )


def apply_dataloader_defaults(args, device_type: str | None = None, cpu_count: int | None = None) -> dict:
    """Input pipeline defaults for accelerator runs: DataLoader workers (decoding, resampling and padding overlap
    the GPU step), persistent across epochs, prefetching 2 batches each. Applied only when `dataloader_num_workers`
    is 0 and the device is not a CPU, where the workers would compete with training for the cores (the demo).

    Workers: min(4, CPU cores per process - 1), from `cpu_count` (default `os.cpu_count()`) and `args.world_size`
    processes on the machine. Returns the settings changed (empty when none).
    """
    import os

    device_type = device_type or args.device.type
    if device_type == "cpu" or args.dataloader_num_workers > 0:
        return {}
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", args.world_size) or 1)
    workers = min(4, (cpu_count or os.cpu_count() or 1) // max(1, local_processes) - 1)
    if workers < 1:
        return {}
    changes = {
        "dataloader_num_workers": workers,
        "dataloader_persistent_workers": True,
        "dataloader_prefetch_factor": args.dataloader_prefetch_factor or 2,
    }
    for name, value in changes.items():
        setattr(args, name, value)
    return changes


BF16_FROM_BATCH = 16
"""Per-device batch from which `choose_mixed_precision` picks bf16 on a GPU with bf16 tensor cores. Measured on one
H200 (bare paper-size step, docs/gpus.md): bf16 autocast 0.80x fp32's speed at batch 4, 0.95x at 8, 1.38x at 16,
2.32x at 32 (its cast kernels cost launches where a small batch is bound by launches); through `run_mgcma.py` on one
H100 at batch 4, bf16 took 51.1 s for 60 steps and fp32 41.0 s."""


def choose_mixed_precision(
    device_type: str, capability: tuple[int, int] | None = None, requested: str = "auto", batch_size: int | None = None
) -> str:
    """The mixed precision to train with: "bf16", "fp16" or "no".

    * `requested="auto"`: on GPUs with bf16 tensor cores (CUDA compute capability >= 8.0: A100, H100, RTX 30xx and
      later) bf16 from a per-device `batch_size` of `BF16_FROM_BATCH` (16; or when the batch is not given), fp32
      below it, where bf16 autocast was measured slower; fp16 with loss scaling on older GPUs (V100 = 7.0, T4 = 7.5;
      not measured here); none on a CPU (fp32).
    * An explicit "fp16" or "no" is kept; an explicit "bf16" is kept except on a CUDA GPU older than 8.0, which runs
      bf16 without tensor cores (slower than fp32): fp16 instead.
    """
    if requested not in ("auto", "bf16", "fp16", "no"):
        raise ValueError(f"`requested` must be 'auto', 'bf16', 'fp16' or 'no', got {requested!r}.")
    bf16_tensor_cores = device_type == "cuda" and capability is not None and tuple(capability) >= (8, 0)
    if requested in ("fp16", "no"):
        return requested
    if requested == "bf16":
        return "fp16" if device_type == "cuda" and not bf16_tensor_cores else "bf16"
    if device_type == "cuda":
        if not bf16_tensor_cores:
            return "fp16"
        return "no" if batch_size is not None and batch_size < BF16_FROM_BATCH else "bf16"
    return "no"


def apply_mixed_precision(args, explicit: bool, device_type: str | None = None, capability=None) -> str | None:
    """Set `args` to `choose_mixed_precision` for its device and per-device batch; `explicit` = the user set
    bf16/fp16 (including to false). accelerate's `--mixed_precision bf16|fp16` (ACCELERATE_MIXED_PRECISION) counts
    as explicit; its "no" does not, since `accelerate launch` sets it whenever nothing was chosen. Returns a message
    when it changed, or when it kept fp32 on a bf16 GPU because the batch is small."""
    import os

    device_type = device_type or args.device.type
    if capability is None and device_type == "cuda":
        capability = torch.cuda.get_device_capability(args.device)
    current = "bf16" if args.bf16 else "fp16" if args.fp16 else args.mixed_precision or "no"
    explicit = explicit or os.environ.get("ACCELERATE_MIXED_PRECISION", "no") != "no" or current != "no"
    batch = getattr(args, "per_device_train_batch_size", None)
    choice = choose_mixed_precision(device_type, capability, current if explicit else "auto", batch)
    where = f"{device_type} (compute capability {capability[0]}.{capability[1]})" if capability else device_type
    if choice == current:
        if not explicit and choice == "no" and choose_mixed_precision(device_type, capability) == "bf16":
            return (f"fp32 chosen for {where} at a per-device batch of {batch}: bf16 autocast is slower than fp32 "
                    f"below batch {BF16_FROM_BATCH} (set --bf16 true to choose it).")  # fmt: skip
        return None
    args.bf16, args.fp16, args.mixed_precision = choice == "bf16", choice == "fp16", choice
    if explicit:
        return f"bf16 has no tensor cores on {where}: training with fp16 and loss scaling instead."
    return f"mixed precision {choice} chosen for {where} (set --bf16/--fp16, or accelerate's --mixed_precision, to choose)."


def _layerdrop_reasons(model: nn.Module) -> list[str]:
    reasons, seen = [], set()
    for name, module in model.named_modules():  # outermost first; submodules share their model's config
        config = getattr(module, "config", None)
        layerdrop = getattr(config, "layerdrop", 0.0) or 0.0
        if getattr(type(module), "_mgcma_fast_step", False):  # LayerDrop by torch.where: every layer gets a gradient
            seen.add(id(config))
        if layerdrop > 0 and id(config) not in seen and any(p.requires_grad for p in module.parameters()):
            seen.add(id(config))
            reasons.append(f"{name or type(module).__name__} skips layers at random in training (layerdrop={layerdrop})")
    return reasons


def _probe_unused_alignment_parameters(model: nn.Module) -> list[str]:
    """Names of trainable parameters outside the encoders that get no gradient from the training loss, found by one
    forward/backward of a 2-utterance batch of random encoder features (the encoders themselves are not run).
    RNG state, gradients and the gathering setting are restored afterwards."""
    backbone = getattr(model, "base_model", model)
    config = getattr(model, "config", None)
    if not hasattr(backbone, "speech_encoder") or not hasattr(backbone, "gather_distributed_negatives") or config is None:
        return []
    encoders = {id(p) for encoder in (backbone.speech_encoder, backbone.text_encoder) for p in encoder.parameters()}
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) not in encoders]
    if not trainable:
        return []
    reference = trainable[0][1]
    saved_grads = {n: p.grad for n, p in trainable}
    gather, was_training = backbone.gather_distributed_negatives, model.training
    generator = torch.Generator().manual_seed(0)

    def features(width):
        return torch.randn(2, 3, width, generator=generator).to(device=reference.device, dtype=reference.dtype)

    inputs = {"speech_features": features(config.speech_config.hidden_size), "text_features": features(config.text_config.hidden_size)}
    if hasattr(model, "classifier"):
        inputs["labels"] = torch.arange(2, device=reference.device) % max(config.num_labels, 1)
    else:
        inputs["return_loss"] = True
    try:
        with torch.random.fork_rng(devices=[] if reference.device.type == "cpu" else None), torch.enable_grad():
            backbone.gather_distributed_negatives = False  # the probe runs on one process only
            model.train()
            for _, parameter in trainable:
                parameter.grad = None
            loss = model(**inputs).loss
            if loss is None:
                return []
            loss.float().backward()
            return [n for n, p in trainable if p.grad is None]
    finally:
        backbone.gather_distributed_negatives = gather
        model.train(was_training)
        for name, parameter in trainable:
            parameter.grad = saved_grads[name]


def unused_parameter_reasons(model: nn.Module) -> list[str]:
    """Why some trainable parameters of `model` may get no gradient in a training step (empty: every one does).

    Two causes: a trainable encoder with `layerdrop > 0` (a skipped layer gets no gradient in that step), and modules
    whose outputs never reach the loss in the configuration built (e.g. `classifier_features="speech"` with the
    token alignment last: its text branch), found by one probe step on random encoder features.
    """
    reasons = _layerdrop_reasons(model)
    unused = _probe_unused_alignment_parameters(model)
    if unused:
        shown = ", ".join(unused[:4]) + (f" and {len(unused) - 4} more" if len(unused) > 4 else "")
        reasons.append(f"{len(unused)} parameter(s) never reach the loss in this configuration ({shown})")
    return reasons


def configure_unused_parameters(model: nn.Module, args) -> list[str]:
    """Set DDP's `find_unused_parameters` from the model actually built, under multi-process training.

    The Trainer turns it off whenever gradient checkpointing is on; with parameters that miss their gradient in a
    step (see `unused_parameter_reasons`) DDP then stops with "Expected to have finished reduction in the prior
    iteration" (or waits forever). When such parameters exist this turns it on and, with gradient checkpointing,
    selects non-reentrant checkpointing (`use_reentrant=False`), the variant DDP's unused-parameter search works
    with. An explicit `ddp_find_unused_parameters` is kept (with a warning when it is False and some exist).
    """
    if args.world_size <= 1:
        return []
    reasons = unused_parameter_reasons(model)
    if not reasons:
        return reasons
    if args.ddp_find_unused_parameters is False:
        logger.warning(
            "ddp_find_unused_parameters=False, but some parameters can miss their gradient in a step: %s. DDP will "
            "fail at the first such step; leave ddp_find_unused_parameters unset.", "; ".join(reasons)
        )
        return reasons
    args.ddp_find_unused_parameters = True
    logger.info("DDP looks for unused parameters every step: %s.", "; ".join(reasons))
    if args.gradient_checkpointing:
        kwargs = dict(args.gradient_checkpointing_kwargs or {})
        if kwargs.get("use_reentrant") is True:
            raise ValueError(
                "gradient_checkpointing_kwargs={'use_reentrant': True} cannot be combined with parameters that miss "
                f"their gradient under DDP ({'; '.join(reasons)}); use use_reentrant=False (the default here)."
            )
        kwargs["use_reentrant"] = False
        args.gradient_checkpointing_kwargs = kwargs
    return reasons


# ---------------------------------------------------------------------------------------------------------------------
# Training arguments
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class MGCMATrainingArguments(FastStepArguments, TrainingArguments):
    """`TrainingArguments` with MGCMA's training settings, applied by `MGCMATrainer` (they are not part of the model's
    config): the training regime (encoder freezing, `gather_distributed_negatives`, per-encoder learning rates) and
    the training objective (`alignment_gradient_balance`, `alignment_gradient_balance_on`,
    `alignment_gradient_projection`, `alignment_gradient_encoders`, `alignment_loss_warmup`, applied in
    `MGCMATrainer.compute_loss`). A plain `TrainingArguments` given to the trainer means these defaults."""

    freeze_feature_encoder: bool = field(
        default=True,
        metadata={"help": "Freeze the speech encoder's convolutional feature encoder (standard wav2vec2 fine-tuning)."},
    )
    freeze_speech_encoder: bool = field(default=False, metadata={"help": "Freeze the whole speech encoder."})
    freeze_text_encoder: bool = field(default=False, metadata={"help": "Freeze the whole text encoder."})
    gather_distributed_negatives: bool = field(
        default=True,
        metadata={"help": "Under multi-process training, use the features of all processes (gathered with gradients) "
                          "as contrastive negatives; ignored in one process."},
    )  # fmt: skip
    speech_encoder_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Peak learning rate of the speech encoder's parameters (default: --learning_rate). A "
                          "pretrained encoder usually wants a smaller rate than the randomly initialised alignment "
                          "modules; the schedule (warm-up, decay) applies to it alike."},
    )
    text_encoder_learning_rate: float | None = field(
        default=None, metadata={"help": "Peak learning rate of the text encoder's parameters (default: --learning_rate)."}
    )  # fmt: skip
    alignment_gradient_balance: float = field(
        default=0.0,
        metadata={"help": "Gradient balancing across losses (0: off, the paper's plain weighted sum). With r > 0, each "
                          "training step scales the alignment losses (w_da L_DA + w_ia L_IA) by a detached factor "
                          "c = min(1, r * |grad L_CE| / |grad alignment|), the gradient norms taken on the backbone's "
                          "parameters, so the alignment losses never pull on the shared encoders harder than r times "
                          "the classifier's loss; the logged loss stays the plain weighted sum. Costs two extra "
                          "backward passes per step. Trained from scratch, their gradients start 10-100x larger than "
                          "L_CE's and the classes are learned far more slowly (benchmarks/README.md, \"Learning\"). "
                          "The settings for new data (configs/presets/new_data.yaml) use 1.0."},
    )  # fmt: skip
    alignment_gradient_balance_on: str = field(
        default="backbone",
        metadata={"help": "Which parameters --alignment_gradient_balance (and --alignment_gradient_projection) reshape: "
                          "backbone (everything the two losses share: encoders, projections, DAM, TAM) or encoders "
                          "(the two encoders and their projections; DAM and TAM, which exist for the alignment, then "
                          "learn from its losses in full). The norms of the cap are taken on the same parameters."},
    )  # fmt: skip
    alignment_gradient_projection: bool = field(
        default=False,
        metadata={"help": "In training, remove from the alignment losses' gradient on the backbone the component that "
                          "points against the classification loss's gradient, when it does (gradient projection as in "
                          "PCGrad, applied to the alignment losses only); the rest is kept, then capped by "
                          "--alignment_gradient_balance when that is > 0. Costs the same two extra backward passes as "
                          "the balance (shared with it)."},
    )  # fmt: skip
    alignment_gradient_encoders: str = field(
        default="both",
        metadata={"help": "Which encoders the alignment losses' gradient reaches in training: both (the paper), "
                          "speech or text. The other encoder then learns from the classification loss alone while "
                          "the alignment losses still train the modules after it and the encoder they reach. Costs "
                          "the same two extra backward passes as --alignment_gradient_balance (shared with it)."},
    )  # fmt: skip
    alignment_loss_warmup: float = field(
        default=0.0,
        metadata={"help": "Fraction of the training steps over which the weights of L_DA and L_IA ramp linearly from 0 "
                          "to their config values (0: full weight from the first step). Evaluation always uses the "
                          "full weights."},
    )  # fmt: skip

    def __post_init__(self):
        super().__post_init__()
        for name in ("speech_encoder_learning_rate", "text_encoder_learning_rate"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"--{name} must be a positive number, got {value!r}.")
        check_objective_options(self)
        check_fast_step_options(self)


def check_objective_options(args) -> None:
    """Refuse training-objective settings of the wrong type or range, naming the argument and its value."""
    balance = args.alignment_gradient_balance
    if isinstance(balance, bool) or not isinstance(balance, (int, float)) or balance < 0:
        raise ValueError(f"--alignment_gradient_balance must be a non-negative number, got {balance!r}.")
    projection = args.alignment_gradient_projection
    if not isinstance(projection, bool):
        raise ValueError(f"--alignment_gradient_projection must be true or false, got {projection!r}.")
    scope = args.alignment_gradient_balance_on
    if scope not in BALANCE_SCOPES:
        raise ValueError(f"--alignment_gradient_balance_on must be one of {', '.join(BALANCE_SCOPES)}, got {scope!r}.")
    encoders = args.alignment_gradient_encoders
    if encoders not in ALIGNMENT_GRADIENT_ENCODERS:
        raise ValueError(f"--alignment_gradient_encoders must be one of {', '.join(ALIGNMENT_GRADIENT_ENCODERS)}, "
                         f"got {encoders!r}.")  # fmt: skip
    warmup = args.alignment_loss_warmup
    if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or not 0.0 <= warmup <= 1.0:
        raise ValueError(f"--alignment_loss_warmup must be a fraction of the training steps in [0, 1], got {warmup!r}.")


def encoder_learning_rates(args) -> dict[str, float]:
    """{"speech_encoder" / "text_encoder": peak rate} for the encoders whose rate `args` sets apart."""
    rates = {
        "speech_encoder": getattr(args, "speech_encoder_learning_rate", None),
        "text_encoder": getattr(args, "text_encoder_learning_rate", None),
    }
    return {name: float(rate) for name, rate in rates.items() if rate is not None}


def split_encoder_parameter_groups(model: nn.Module, param_groups: list[dict], rates: dict[str, float]) -> list[dict]:
    """`param_groups` with each encoder's parameters moved into groups of their own at `rates[encoder]` (every other
    option of the group they came from kept). Parameters of the rest of the model keep their group and rate."""
    backbone = getattr(model, "base_model", model)
    owner = {}
    for name in rates:
        encoder = getattr(backbone, name, None)
        if encoder is None:
            raise ValueError(f"a learning rate is set for the {name.replace('_', ' ')}, but the model has none.")
        owner.update({id(p): name for p in encoder.parameters()})
    groups, found = [], set()
    for group in param_groups:
        parts = {None: [], **{name: [] for name in rates}}
        for parameter in group["params"]:
            parts[owner.get(id(parameter))].append(parameter)
        for name, params in parts.items():
            if params:
                found.add(name)
                options = {key: value for key, value in group.items() if key != "params"}
                if name is not None:
                    options["lr"] = rates[name]
                    if "initial_lr" in options:  # a scheduler already attached reads its base rate from here
                        options["initial_lr"] = rates[name]
                groups.append({**options, "params": params})
    for name in rates.keys() - found:  # frozen: none of its parameters is trained
        logger.warning("--%s_learning_rate is set, but the %s is frozen: unused.", name, name.replace("_", " "))
    return groups


TRAINING_REGIME_DEFAULTS = {
    name: MGCMATrainingArguments.__dataclass_fields__[name].default
    for name in ("freeze_feature_encoder", "freeze_speech_encoder", "freeze_text_encoder", "gather_distributed_negatives")
}


OBJECTIVE_DEFAULTS = {
    name: MGCMATrainingArguments.__dataclass_fields__[name].default
    for name in ("alignment_gradient_balance", "alignment_gradient_balance_on", "alignment_gradient_projection",
                 "alignment_gradient_encoders", "alignment_loss_warmup")
}


def objective_options(args) -> dict:
    """The training-objective settings of `args` (`MGCMATrainingArguments`, or their defaults for others)."""
    return {name: getattr(args, name, default) for name, default in OBJECTIVE_DEFAULTS.items()}


def training_regime(args) -> dict[str, bool]:
    """The MGCMA training-regime settings of `args` (`MGCMATrainingArguments`, or their defaults for others)."""
    return {name: bool(getattr(args, name, default)) for name, default in TRAINING_REGIME_DEFAULTS.items()}


def apply_training_regime(model: nn.Module, args) -> dict[str, bool]:
    """Freeze what `args` says and set the model's `gather_distributed_negatives`; returns the settings applied."""
    regime = training_regime(args)
    backbone = getattr(model, "base_model", model)
    if not hasattr(backbone, "speech_encoder"):
        return regime
    if regime["freeze_feature_encoder"] and hasattr(backbone.speech_encoder, "freeze_feature_encoder"):
        backbone.speech_encoder.freeze_feature_encoder()
    if regime["freeze_speech_encoder"]:
        backbone.speech_encoder.requires_grad_(False)
    if regime["freeze_text_encoder"]:
        backbone.text_encoder.requires_grad_(False)
    backbone.gather_distributed_negatives = regime["gather_distributed_negatives"]
    return regime


# ---------------------------------------------------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------------------------------------------------


class MGCMATrainer(FastStepTrainerMixin, Trainer):
    """A `Trainer` for `MGCMAForEmotionClassification`.

    * Logs ``loss_ce``, ``loss_da`` and ``loss_ia`` with every training ``loss`` (console, `log_history` and every
      `report_to` integration), each the mean over the micro-batches of the logging interval (so gradient
      accumulation does not change the scale) and over processes. Evaluation accumulates separately and adds
      ``eval_loss_ce`` ... to its metrics.
    * Applies the training regime of its arguments (`MGCMATrainingArguments`: encoder freezing, and
      `gather_distributed_negatives`, with which the contrastive losses see the global batch under several processes).
    * Builds each training step's loss from the model's components (`compute_loss`): the alignment losses ramped in
      over the first `alignment_loss_warmup` of the steps, their gradient on the backbone projected
      (`alignment_gradient_projection`) and capped (`alignment_gradient_balance`). Evaluation, and everything logged
      as a component, use the model's plain weighted sum.
    * `prediction_step` returns only the logits (plus the pooled speech and text features when
      `collect_embeddings` is set, for the t-SNE plot), not every hidden state.
    * The MGCMA losses are batch means (a contrastive loss does not decompose into per-item terms), so
      `num_items_in_batch` is accepted and not used; the Trainer scales for gradient accumulation itself.
    * With `train_sampling_strategy="group_by_length"` the training DataLoader iterates a
      `LengthGroupedBatchSampler`: the batches it yields are the sampler's, and under DDP each step's batches come
      from one length-sorted group.
    * Multi-GPU: refuses `nn.DataParallel` (`refuse_data_parallel`), sets DDP's `find_unused_parameters` from the
      model built (`configure_unused_parameters`), and in cached-feature training keeps the frozen encoders on the
      CPU and out of DDP.
    """

    def __init__(self, *args, **kwargs):
        model = kwargs.get("model", args[0] if args else None)
        training_args = kwargs.get("args", args[1] if len(args) > 1 else None)
        if training_args is not None:
            refuse_data_parallel(training_args)
            if model is not None:
                apply_training_regime(model, training_args)
                if fast_step_on(training_args):  # before the unused-parameter decision: LayerDrop then skips nothing
                    install_fast_encoders(model)
                configure_unused_parameters(model, training_args)
        super().__init__(*args, **kwargs)
        if self.args.remove_unused_columns:
            logger.info("MGCMATrainer sets remove_unused_columns=False: the data collator reads `audio` and `text`.")
            self.args.remove_unused_columns = False
        # The model's forward takes **kwargs (to reject them with a clear error), which the Trainer would read as
        # "accepts num_items_in_batch"; it does not.
        self.model_accepts_loss_kwargs = False
        self.collect_embeddings = False
        self._component_sums = {"train": collections.defaultdict(float), "eval": collections.defaultdict(float)}
        self._component_counts = {"train": collections.Counter(), "eval": collections.Counter()}
        self._log_gathering()
        self._keep_unused_encoders_on_cpu()

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        """The Trainer's optimizer; with `speech_encoder_learning_rate` / `text_encoder_learning_rate`, each encoder's
        parameters get groups of their own at that peak rate (the scheduler, created afterwards, scales every group
        alike)."""
        created = self.optimizer is None  # an optimizer passed to the Trainer is used as given
        optimizer = super().create_optimizer(model)
        rates = encoder_learning_rates(self.args)
        if rates and created:
            target = self.accelerator.unwrap_model(self.model if model is None else model)
            optimizer.param_groups[:] = split_encoder_parameter_groups(target, optimizer.param_groups, rates)
            logger.info("learning rates: %s, everything else %g", rates, self.args.learning_rate)
        return optimizer

    # -- length-grouped batching (`--train_sampling_strategy group_by_length`) -------------------------------------

    def _audio_lengths(self, dataset) -> list[int]:
        """Per-row lengths without decoding audio: the `length_column_name` column, the cached speech frames, or
        `end - start` / file headers capped at the collator's processor `max_duration` (what the model sees)."""
        from .feature_cache import SPEECH_COLUMN, cached_feature_lengths
        from .sampling import audio_lengths

        cache = self.__dict__.setdefault("_length_cache", {})
        key = getattr(dataset, "_fingerprint", None) or id(dataset)
        if key not in cache:
            if self.args.length_column_name in dataset.column_names:
                cache[key] = list(dataset[self.args.length_column_name])
            elif SPEECH_COLUMN in dataset.column_names:
                cache[key] = cached_feature_lengths(dataset)
            else:
                processor = getattr(self.data_collator, "processor", None)
                cache[key] = audio_lengths(
                    dataset,
                    audio_column=getattr(self.data_collator, "audio_column", "audio"),
                    sampling_rate=getattr(processor, "sampling_rate", TARGET_SAMPLING_RATE),
                    max_duration=getattr(processor, "max_duration", None),
                )
        return cache[key]

    def _get_train_sampler(self, train_dataset=None):
        train_dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or not hasattr(train_dataset, "column_names"):
            return super()._get_train_sampler(train_dataset)
        from .sampling import LengthGroupedBatchSampler

        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        # every rank draws the same epoch and takes its batch of each step (one sorted group per global step)
        return LengthGroupedBatchSampler(
            self._audio_lengths(train_dataset),
            self._train_batch_size,
            seed=seed,
            num_replicas=self.args.world_size,
            rank=self.args.process_index,
            drop_last=self.args.dataloader_drop_last,
        )

    def get_train_dataloader(self):
        """With `group_by_length`, a DataLoader over the `LengthGroupedBatchSampler`'s batches: the batches the
        sampler forms are the batches training sees (a flat sampler would be re-chunked by the DataLoader, and its
        groups dealt whole to the ranks in turn). Otherwise the Trainer's own."""
        from .sampling import LengthGroupedBatchSampler

        if self.train_dataset is None:
            return super().get_train_dataloader()
        batch_sampler = self._get_train_sampler(self.train_dataset)
        if not isinstance(batch_sampler, LengthGroupedBatchSampler):
            return super().get_train_dataloader()
        return self._batch_sampler_dataloader(self.train_dataset, batch_sampler)

    def _batch_sampler_dataloader(self, dataset, batch_sampler):
        from functools import partial

        from torch.utils.data import DataLoader
        from transformers.trainer_utils import seed_worker

        args = self.args
        workers = args.dataloader_num_workers
        params = {"batch_sampler": batch_sampler, "collate_fn": self.data_collator, "num_workers": workers,
                  "pin_memory": args.dataloader_pin_memory}  # fmt: skip
        if workers > 0:
            params["persistent_workers"] = args.dataloader_persistent_workers
            params["prefetch_factor"] = args.dataloader_prefetch_factor
            params["worker_init_fn"] = partial(seed_worker, num_workers=workers, rank=args.process_index)
            context = getattr(args, "dataloader_multiprocessing_context", None)
            if context is not None:
                params["multiprocessing_context"] = context
        loader = self.accelerator.prepare(DataLoader(dataset, **params))
        # The batch sampler already gives each rank its own batches; accelerate's `BatchSamplerShard` would deal them
        # out again (rank r keeping every W-th of its own batches). Make that wrapper a passthrough.
        wrapper = getattr(loader, "batch_sampler", None)
        if wrapper is not batch_sampler and getattr(wrapper, "batch_sampler", None) is batch_sampler:
            wrapper.num_processes, wrapper.process_index = 1, 0
        return loader

    def _get_eval_sampler(self, eval_dataset):
        if self.args.train_sampling_strategy != "group_by_length" or not hasattr(eval_dataset, "column_names"):
            return super()._get_eval_sampler(eval_dataset)
        from .sampling import build_length_grouped_sampler

        # sorted by length, deterministic; predictions and label_ids come back in this order, together
        return build_length_grouped_sampler(self._audio_lengths(eval_dataset), self.args.eval_batch_size, shuffle=False)

    def prediction_order(self, dataset) -> list[int]:
        """Row indices of `dataset` in the order `predict` / `evaluate` return their predictions (sorted by length
        under `group_by_length`, else the dataset's own order): pair ids with predictions through it."""
        sampler = self._get_eval_sampler(dataset)
        return list(range(len(dataset))) if sampler is None else list(sampler)

    # -- cached-feature training: the frozen encoders are not run ----------------------------------------------------

    def _unused_encoders(self) -> list[tuple[str, nn.Module]]:
        """(name, module) of the encoders when training reads cached features (a `speech_features` column) and the
        encoders are frozen: they never run in a step, so they need neither accelerator memory nor DDP."""
        from .feature_cache import SPEECH_COLUMN

        dataset = self.__dict__.get("train_dataset")
        if dataset is None or SPEECH_COLUMN not in getattr(dataset, "column_names", ()):
            return []
        model = self.accelerator.unwrap_model(self.model)
        backbone = getattr(model, "base_model", model)
        if not hasattr(backbone, "speech_encoder"):
            return []
        prefix = f"{model.base_model_prefix}." if backbone is not model else ""
        encoders = [(prefix + "speech_encoder", backbone.speech_encoder), (prefix + "text_encoder", backbone.text_encoder)]
        if any(p.requires_grad for _, encoder in encoders for p in encoder.parameters()):
            return []
        return encoders

    def _keep_unused_encoders_on_cpu(self):
        """Keep the frozen encoders of cached-feature training on the CPU, ignored by DDP. accelerate's `prepare`
        moves the whole model to the device before wrapping it, so `compute_loss` moves them back (once)."""
        if "train_dataset" not in self.__dict__:  # the Trainer moves the model before it stores the datasets
            return
        if "_offloaded_encoders" not in self.__dict__:
            self._offloaded_encoders = self._unused_encoders()
        encoders = self._offloaded_encoders
        if not encoders:
            return
        model = self.accelerator.unwrap_model(self.model)
        if not self.__dict__.get("_encoders_ignored_by_ddp", False):
            names = [
                f"{name}.{entry}"
                for name, encoder in encoders
                for entry, _ in (*encoder.named_parameters(), *encoder.named_buffers())
            ]
            # DDP neither broadcasts nor checks the devices of what it ignores
            ignored = set(getattr(model, "_ddp_params_and_buffers_to_ignore", ()))
            nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, sorted(ignored | set(names)))
            self._encoders_ignored_by_ddp = True
        if all(_on_cpu(encoder) for _, encoder in encoders):
            return
        for _, encoder in encoders:
            encoder.to("cpu")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        logger.info("Cached features: the frozen encoders stay on the CPU, outside DDP (they are not run in training).")

    def _move_model_to_device(self, model, device):
        super()._move_model_to_device(model, device)
        self._keep_unused_encoders_on_cpu()

    def _log_gathering(self):
        model = self.accelerator.unwrap_model(self.model)
        backbone = getattr(model, "base_model", model)
        if self.accelerator.num_processes > 1 and getattr(backbone, "gather_distributed_negatives", False):
            logger.info(
                "Contrastive losses use the negatives of all %d processes (gathered with gradients).",
                self.accelerator.num_processes,
            )

    # -- loss ----------------------------------------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self._keep_unused_encoders_on_cpu()
        outputs = model(**inputs)
        if outputs.loss is None:
            raise ValueError(f"the model returned no loss: the batch needs `labels`; it has {sorted(inputs)}.")
        phase = "train" if model.training else "eval"
        loss = self.training_objective(model, outputs) if phase == "train" else outputs.loss
        # Evaluation averages per utterance, as the Trainer averages eval_loss (each batch's loss repeated batch-size
        # times), so eval_loss = sum of weight * eval_loss_<component> whatever the batch sizes; training per batch.
        weight = len(inputs["labels"]) if phase == "eval" and inputs.get("labels") is not None else 1
        for name in LOSS_COMPONENTS:
            value = getattr(outputs, name, None)
            if value is not None:
                self._component_sums[phase][name] = self._component_sums[phase][name] + value.detach().float() * weight
                self._component_counts[phase][name] += weight
        return (loss, outputs) if return_outputs else loss

    def training_objective(self, model: nn.Module, outputs) -> torch.Tensor:
        """The loss to back-propagate in a training step: the model's weighted sum, or, with an alignment-loss
        warm-up, balancing or projection, that sum rebuilt from its components (`alignment_objective`) at the warm-up
        factor of the current optimisation step (the same for every micro-batch of a gradient-accumulation step)."""
        options = objective_options(self.args)
        balance, projection = options["alignment_gradient_balance"], options["alignment_gradient_projection"]
        scale = alignment_loss_scale(self.state.global_step, self.state.max_steps, options["alignment_loss_warmup"])
        encoders = options["alignment_gradient_encoders"]
        if balance <= 0 and not projection and encoders == "both" and scale == 1.0:
            return outputs.loss
        unwrapped = self.accelerator.unwrap_model(model)
        shared = others = exempt = uncapped = None
        if balance > 0 or projection or encoders != "both":
            shared, others = shared_parameters(unwrapped), other_parameters(unwrapped)
            exempt = alignment_exempt_parameters(unwrapped, encoders)
            uncapped = alignment_module_parameters(unwrapped, options["alignment_gradient_balance_on"])
        return alignment_objective(outputs, unwrapped.config, shared, balance, projection, alignment_scale=scale,
                                   others=others, exempt=exempt, uncapped=uncapped)  # fmt: skip

    def _flush_components(self, phase: str) -> dict[str, float]:
        """Means of the accumulated components since the last flush, averaged over processes; then reset."""
        sums, counts = self._component_sums[phase], self._component_counts[phase]
        means = {}
        for name in LOSS_COMPONENTS:  # the same names on every process: the model config is the same
            if counts[name] == 0:
                continue
            total = torch.stack([torch.as_tensor(sums[name], dtype=torch.float32, device=self.args.device).reshape(()),
                                 torch.tensor(float(counts[name]), device=self.args.device)])  # fmt: skip
            if self.accelerator.num_processes > 1:
                total = self.accelerator.reduce(total, reduction="sum")  # over every process's items, not their means
            mean = total[0] / total[1]
            means[name] = round(float(mean.item()), 6)
        sums.clear()
        counts.clear()
        return means

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # The periodic training log is the one with a plain "loss" (evaluation logs "eval_loss", the end of training
        # "train_loss"). Every process reaches it at the same step, so the reduction inside is safe.
        if "loss" in logs:
            logs.update(self._flush_components("train"))
        super().log(logs, start_time)

    # -- evaluation ----------------------------------------------------------------------------------------------------

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"):
        self._component_sums["eval"].clear()
        self._component_counts["eval"].clear()
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        for name, value in self._flush_components("eval").items():
            output.metrics[f"{metric_key_prefix}_{name}"] = value
        return output

    def prediction_step(self, model: nn.Module, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        labels = inputs.get("labels")
        with torch.no_grad():
            if labels is not None:
                with self.compute_loss_context_manager():
                    loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
                loss = loss.detach().mean()
            else:
                loss, outputs = None, model(**inputs)
        if prediction_loss_only:
            return loss, None, None
        logits = outputs.logits.detach()
        if self.collect_embeddings:
            logits = (logits, outputs.speech_embeds.detach().float(), outputs.text_embeds.detach().float())
        return loss, logits, labels


__all__ = [
    "MGCMATrainer",
    "MGCMATrainingArguments",
    "apply_training_regime",
    "training_regime",
    "objective_options",
    "refuse_data_parallel",
    "apply_dataloader_defaults",
    "choose_mixed_precision",
    "BF16_FROM_BATCH",
    "apply_mixed_precision",
    "unused_parameter_reasons",
    "configure_unused_parameters",
    "LOSS_COMPONENTS",
]
