# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Learning benchmark: does the full MGCMA model learn at least as well as its ablations and a plain fusion model?

    python benchmarks/bench_learning.py table              # S0-S4 + concat baseline, both corpora, 3 seeds, 2 recipes
    python benchmarks/bench_learning.py diagnose           # per-loss gradient norms and logit spans, D = 64 and 768
    python benchmarks/bench_learning.py curves --setting S0 --recipe plain   # per-epoch losses and validation UA
    python benchmarks/bench_learning.py stages --recipe demo --seeds 1 --epochs 4  # where features stop varying
    python benchmarks/bench_learning.py table ... --test_per_class 80 --run_set NAME  # same models, 4x the test session
    python benchmarks/bench_learning.py probes --settings S0 S4 --corpora spoken --seeds 0  # linear probes per stage
    python benchmarks/bench_learning.py table ... --text_model FOLDER --train '{"learning_rate": 1e-4}' --run_set NAME
                                                           # a pretrained text encoder (its own tokenizer) instead
    python benchmarks/bench_learning.py curves ... --utterances_per_session 160    # twice the data in every session
    python benchmarks/bench_learning.py summary --run_set learning-test80         # a recorded run set's table

`table` records one row per run in benchmarks/results/learning.csv (`--results`), under a run set (`--run_set`), and
the run's per-epoch curves in learning_curves.csv beside it (learning_results.py reads, lists and merges them).

Every model is small (64 wide encoders from scratch, 64 wide MGCMA with 2 alignment blocks, 4 heads), trained on a
synthetic corpus in IEMOCAP's layout with session 5 held out and validation drawn from sessions 1-4. The training
loop is the Trainer's recipe written out (AdamW, decay off for biases and LayerNorms, linear schedule with warm-up,
global gradient clipping at `max_grad_norm`, best epoch by validation UA, test once) so that one run takes seconds
on one core; the recipes are read from run_mgcma.py's presets (configs/presets/), so the table follows any change to them.

The "concat" baseline is a separate model that imports nothing of MGCMA's modelling code: the same two encoders,
a linear projection to 64, masked mean pooling, and the same classifier head (Linear-GELU-Dropout-Linear) on the
concatenation.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformers import AutoModel, get_scheduler  # noqa: E402

from modeling_mgcma import MGCMAConfig, MGCMAForEmotionClassification  # noqa: E402
from modeling_mgcma.deploy.onnx_runtime import positive_int  # noqa: E402
from modeling_mgcma.experiments.run_arguments import load_preset  # noqa: E402
from modeling_mgcma.modeling_mgcma import instance_contrastive_loss, masked_pool  # noqa: E402
from modeling_mgcma.processing_mgcma import DEFAULT_MAX_DURATION  # noqa: E402
from modeling_mgcma.training.from_scratch import (  # noqa: E402
    DEMO_SPEECH_ENCODER,
    speech_encoder_config,
    text_encoder_config,
    word_processor,
)
from modeling_mgcma.training.trainer import encoder_learning_rates, split_encoder_parameter_groups  # noqa: E402


sys.path.insert(0, str(Path(__file__).resolve().parent))
import learning_families  # noqa: E402
import learning_results  # noqa: E402
from learning_results import SETTINGS, criterion, load_results  # noqa: E402, F401  (the table's records and criterion)


CORPUS_VOICES = {"demo": "tones", "spoken": "espeak"}  # corpus kind -> generate_demo_corpus's voice
UTTERANCES_PER_SESSION = 80  # the corpora of the table; other sizes are cached apart (curves --utterances_per_session)
WIDTH, LAYERS, HEADS, INTERMEDIATE = 64, 2, 4, 128


# ---------------------------------------------------------------------------------------------------------------------
# Recipes: what a run of run_mgcma.py would use
# ---------------------------------------------------------------------------------------------------------------------


def recipe(name: str) -> dict:
    """Training arguments + MGCMA config arguments of a recipe.

    "demo": `--preset demo` applied unchanged (its training defaults and its config), on 64-wide encoders given as
    folders (their own dropout, as a user's encoders would have). "plain": a user's own choice with the defaults for
    new data: `--learning_rate 1e-3 --num_train_epochs 15 --per_device_train_batch_size 8`, nothing else.
    """
    base = {"weight_decay": 0.0, "lr_scheduler_type": "linear", "warmup_steps": 0, "max_grad_norm": 1.0}
    if name not in ("demo", "plain"):
        raise ValueError(f"unknown recipe {name!r}; expected 'demo' or 'plain'.")
    training, config = load_preset("demo" if name == "demo" else None)
    train = {**base, **{k: v for k, v in training.items() if k in TRAIN_KEYS}}
    if name == "plain":  # the user's three arguments win over the defaults for new data
        train.update({"learning_rate": 1e-3, "num_train_epochs": 15, "per_device_train_batch_size": 8})
    return {"train": train, "config": config}


TRAIN_KEYS = (
    "learning_rate", "weight_decay", "lr_scheduler_type", "warmup_steps", "num_train_epochs",
    "per_device_train_batch_size", "max_grad_norm",
    "alignment_gradient_balance", "alignment_gradient_projection", "alignment_loss_warmup",
    "alignment_gradient_encoders", "alignment_gradient_balance_on",
)  # fmt: skip
# the training objective's options (MGCMATrainingArguments), applied as MGCMATrainer.compute_loss applies them
OBJECTIVE_DEFAULTS = {"alignment_gradient_balance": 0.0, "alignment_gradient_projection": False,
                      "alignment_loss_warmup": 0.0, "alignment_gradient_encoders": "both",
                      "alignment_gradient_balance_on": "backbone"}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def make_corpus(kind: str, seed: int, root: Path, utterances_per_session: int = UTTERANCES_PER_SESSION,
                test_per_class: int | None = None) -> Path:
    """The corpus of `kind` and `seed`. With `test_per_class`, session 5 (the test session) holds that many utterances
    of each class instead of utterances_per_session / 4. Each session is drawn from its own generator (seed, session),
    so sessions 1-4, and with them training, validation and the trained model, are the same as without it: a larger
    test session measures the same models with less sampling noise."""
    from modeling_mgcma.data import generate_demo_corpus
    from modeling_mgcma.data.demo_corpus import session_counts

    if kind not in CORPUS_VOICES and kind not in learning_families.MEMBERS:
        raise ValueError(f"unknown corpus {kind!r}; expected one of {sorted(CORPUS_VOICES) + sorted(learning_families.MEMBERS)}")
    voice = CORPUS_VOICES[kind] if kind in CORPUS_VOICES else learning_families.member(kind)["voice"]
    kwargs = {"voice": voice} if voice != "tones" else {}
    if kind in learning_families.MEMBERS:  # a family member: its corpus style and utterance durations
        kwargs["style"] = corpus_style(kind)
        kwargs["durations"] = learning_families.member(kind).get("durations", "short")
    name = f"{kind}-{seed}" + (f"-u{utterances_per_session}" if utterances_per_session != UTTERANCES_PER_SESSION else "")
    if test_per_class is None:
        return generate_demo_corpus(root / name, seed=seed, utterances_per_session=utterances_per_session, **kwargs)
    counts = session_counts(utterances_per_session)
    counts[5] = dict.fromkeys(counts[5], test_per_class)
    return generate_demo_corpus(root / f"{name}-test{test_per_class}", seed=seed, counts=counts, **kwargs)


def load_fold(corpus_root: Path, processor, split_seed: int = 0) -> dict:
    """{train, validation, test}: lists of processed utterances; test = session 5, validation from sessions 1-4."""
    from modeling_mgcma.data import load_iemocap, loso_fold
    from modeling_mgcma.processing_mgcma import decode_audio

    dataset = load_iemocap(corpus_root, strict_counts=False)
    splits = loso_fold(dataset, 5, seed=split_seed)
    out = {}
    for name, split in splits.items():
        rows = []
        for row in split:
            clip, rate = decode_audio(row["audio"])
            rows.append({"audio": clip, "rate": rate, "text": row["text"], "label": int(row["label"])})
        out[name] = rows
    return out


def batches(rows, processor, batch_size, generator=None):
    order = torch.randperm(len(rows), generator=generator).tolist() if generator is not None else range(len(rows))
    order = list(order)
    for start in range(0, len(order), batch_size):
        chunk = [rows[i] for i in order[start : start + batch_size]]
        batch = dict(
            processor(audio=[r["audio"] for r in chunk], text=[r["text"] for r in chunk], sampling_rate=[r["rate"] for r in chunk])
        )
        batch["labels"] = torch.tensor([r["label"] for r in chunk])
        yield batch


# ---------------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------------


def encoder_configs(vocab_size: int, width: int = WIDTH, corpus: str | None = None):
    """The from-scratch (speech, text) encoder configs: the demo's, or those of a family member `corpus`."""
    speech_overrides, text_overrides = DEMO_SPEECH_ENCODER, {}
    if corpus in learning_families.MEMBERS:
        spec = learning_families.member(corpus)
        speech_overrides = learning_families.SPEECH_ENCODERS[spec["speech_encoder"]]
        text_overrides = learning_families.TEXT_ENCODERS[spec["text_encoder"]]
    speech = speech_encoder_config(width, LAYERS, HEADS, 2 * width, **speech_overrides)
    text = text_encoder_config(vocab_size, width, LAYERS, HEADS, 2 * width, **text_overrides)
    return speech, text


def corpus_style(corpus: str):
    """The `CorpusStyle` of `corpus`: a family member's own, the project's for its own corpora."""
    from modeling_mgcma.data.demo_corpus import DEFAULT_STYLE

    return learning_families.corpus_style(corpus) if corpus in learning_families.MEMBERS else DEFAULT_STYLE


def corpus_vocabulary(corpus: str) -> list[str]:
    """The word-level vocabulary of `corpus`'s transcripts (a family member's style may use other words)."""
    from modeling_mgcma.data import demo_vocabulary

    return demo_vocabulary(corpus_style(corpus))


class ConcatPoolBaseline(nn.Module):
    """Speech and text encoders, a linear projection each, masked mean pooling, an MLP head on the concatenation."""

    def __init__(self, speech_config, text_config, num_labels, width=WIDTH, dropout=0.1, text_encoder=None,
                 speech_encoder=None):
        super().__init__()
        self.speech_encoder = speech_encoder if speech_encoder is not None else AutoModel.from_config(speech_config)
        self.text_encoder = text_encoder if text_encoder is not None else AutoModel.from_config(text_config)
        self.text_encoder.pooler = None
        self.speech_encoder.freeze_feature_encoder()  # as MGCMATrainer's default for MGCMA
        self.speech_projection = nn.Linear(speech_config.hidden_size, width)
        self.text_projection = nn.Linear(text_config.hidden_size, width)
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(2 * width, width), nn.GELU(), nn.Dropout(dropout), nn.Linear(width, num_labels)
        )
        for module in (self.speech_projection, self.text_projection, *self.head):
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    @staticmethod
    def _pool(hidden, mask):
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)

    def forward(self, input_values, input_ids, speech_attention_mask, text_attention_mask, labels=None, **_):
        speech = self.speech_encoder(input_values, attention_mask=speech_attention_mask).last_hidden_state
        frames = self.speech_encoder._get_feat_extract_output_lengths(speech_attention_mask.sum(-1))
        speech_mask = torch.arange(speech.shape[1])[None, :] < frames[:, None]
        text = self.text_encoder(input_ids, attention_mask=text_attention_mask).last_hidden_state
        pooled = torch.cat(
            [self._pool(self.speech_projection(speech), speech_mask), self._pool(self.text_projection(text), text_attention_mask.bool())],
            dim=-1,
        )
        logits = self.head(pooled)
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return {"loss": loss, "logits": logits, "loss_ce": loss}


def build(setting: str, vocab_size: int, config_kwargs: dict, seed: int, width: int = WIDTH, text_model: str | None = None,
          corpus: str | None = None, speech_model: str | None = None):
    """The untrained model of `setting`; with `text_model` / `speech_model` (folders), its text / speech encoder is
    that pretrained model; otherwise from scratch, with a family member's `corpus`, in that member's architectures."""
    torch.manual_seed(seed)
    speech, text = encoder_configs(vocab_size, width, corpus)
    text_encoder = speech_encoder = None
    if text_model is not None:
        text_encoder = AutoModel.from_pretrained(text_model, add_pooling_layer=False)
        text = text_encoder.config
    if speech_model is not None:
        speech_encoder = AutoModel.from_pretrained(speech_model)
        speech = speech_encoder.config
    if setting == "concat":
        return ConcatPoolBaseline(speech, text, num_labels=4, width=width, text_encoder=text_encoder,
                                  speech_encoder=speech_encoder)
    kwargs = {**config_kwargs, **(MGCMAConfig.ablation_kwargs(setting) if setting != "S0" else {})}
    config = MGCMAConfig(
        speech_config=speech, text_config=text, hidden_size=width, num_attention_heads=HEADS,
        num_alignment_layers=LAYERS, intermediate_size=2 * width, **kwargs,
    )  # fmt: skip
    model = MGCMAForEmotionClassification(config, speech_encoder=speech_encoder, text_encoder=text_encoder)
    model.freeze_feature_encoder()  # as MGCMATrainer does with its default training arguments
    return model


# ---------------------------------------------------------------------------------------------------------------------
# Training (the Trainer's recipe, written out)
# ---------------------------------------------------------------------------------------------------------------------


def unweighted_accuracy(predictions, references, num_labels=4) -> float:
    recalls = [float((predictions[references == c] == c).mean()) for c in range(num_labels) if (references == c).any()]
    return float(np.mean(recalls))


@torch.no_grad()
def evaluate(model, rows, processor) -> float:
    model.eval()
    predictions, references = [], []
    for batch in batches(rows, processor, 32):
        out = model(**batch)
        logits = out["logits"]
        predictions.append(logits.argmax(-1).numpy())
        references.append(batch["labels"].numpy())
    model.train()
    return unweighted_accuracy(np.concatenate(predictions), np.concatenate(references))


def make_optimizer(model, train: dict, steps: int):
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if name.endswith("bias") or "norm" in name.lower() else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": train["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    rates = encoder_learning_rates(SimpleNamespace(**train))  # as MGCMATrainer: a peak rate per encoder, when set
    if rates:
        groups = split_encoder_parameter_groups(model, [{**g, "lr": train["learning_rate"]} for g in groups], rates)
    optimizer = torch.optim.AdamW(
        groups, lr=train["learning_rate"], betas=(train.get("adam_beta1", 0.9), train.get("adam_beta2", 0.999))
    )
    warmup = train["warmup_steps"]
    warmup = math.ceil(warmup * steps) if isinstance(warmup, float) and warmup < 1 else int(warmup)
    scheduler = get_scheduler(train["lr_scheduler_type"], optimizer, num_warmup_steps=warmup, num_training_steps=steps)
    return optimizer, scheduler


def _term_gradient_norms(model, out, shared, balance: float = 0.0, projection: bool = False,
                         alignment_scale: float = 1.0) -> dict:
    """Norm of each weighted loss term's gradient on the shared parameters (everything but the classifier); with
    alignment losses, also the cosine between their gradient and L_CE's (all shared parameters, and each encoder's
    alone) and the balancing factor c that the training objective (`balance`, `projection`, `alignment_scale`: the
    step's alignment_gradient_balance, alignment_gradient_projection and warm-up factor) applies to the step."""
    config = getattr(model, "config", None)
    weights = {"loss_ce": getattr(config, "classification_loss_weight", 1.0),
               "loss_da": getattr(config, "distribution_loss_weight", 1.0),
               "loss_ia": getattr(config, "instance_loss_weight", 1.0)}  # fmt: skip
    norms, ce_grads = {}, None
    for key, weight in weights.items():
        value = out.get(key)
        if value is None:
            continue
        grads = torch.autograd.grad(weight * value, shared, retain_graph=True, allow_unused=True)
        norms[f"g_{key[5:]}"] = float(torch.stack([g.pow(2).sum() for g in grads if g is not None]).sum().sqrt())
        if key == "loss_ce":
            ce_grads = grads
    terms = [weights[key] * out[key] for key in ("loss_da", "loss_ia") if out.get(key) is not None]
    if terms and ce_grads is not None:
        # cos: how far the alignment losses' gradient points with (+1) or against (-1) the classifier loss's;
        # c: the balancing factor the model applied to this step (after the projection, when that is on)
        alignment = sum(terms) * alignment_scale
        grads = torch.autograd.grad(alignment, shared, retain_graph=True, allow_unused=True)
        names = {id(p): n for n, p in model.named_parameters()}
        pairs = [(names.get(id(p), ""), a, b) for p, a, b in zip(shared, ce_grads, grads) if a is not None and b is not None]
        g_align_sq = float(sum(g.pow(2).sum() for g in grads if g is not None))
        dot = float(sum((a * b).sum() for _, a, b in pairs))
        norms["cos"] = dot / max(norms["g_ce"] * g_align_sq**0.5, 1e-12)
        for group in ("speech_encoder", "text_encoder"):  # the same, on each encoder's parameters alone
            own = [(a, b) for name, a, b in pairs if f"{group}." in name]
            if own:
                own_dot = float(sum((a * b).sum() for a, b in own))
                own_norms = [float(sum(t.pow(2).sum() for t in side)) ** 0.5 for side in zip(*own)]
                norms[f"cos_{group.split('_')[0]}"] = own_dot / max(own_norms[0] * own_norms[1], 1e-12)
        if projection and dot < 0:
            g_align_sq = max(g_align_sq - dot * dot / max(norms["g_ce"] ** 2, 1e-24), 0.0)
        if balance > 0:
            norms["c"] = min(1.0, balance * norms["g_ce"] / max(g_align_sq**0.5, 1e-12))
    return norms


def _spread(features, mask=None) -> float:
    """Std across the batch (mean over dimensions) / overall std of pooled features (with a mask: token features,
    masked-mean pooled first): ~1 when they vary with the input, 0 when every utterance gets the same vector."""
    if mask is not None:
        weights = mask.unsqueeze(-1).float()
        features = (features * weights).sum(1) / weights.sum(1)
    features = features.float()
    return float(features.std(0).mean() / features.std().clamp_min(1e-12))


def train_and_test(model, fold, processor, train: dict, seed: int, log=None, probe_every: int = 0,
                   stop_after_epochs: int | None = None) -> dict:
    """Train with `train`, keep the epoch with the best validation UA, return its test UA (and the curves).

    `probe_every` > 0: every that many steps, also record each loss term's gradient norm on the shared parameters
    and the fraction of the total gradient that clipping kept. `stop_after_epochs`: stop there (the learning-rate
    schedule stays the full run's), for diagnostics."""
    generator = torch.Generator().manual_seed(seed)
    batch_size, epochs = train["per_device_train_batch_size"], int(train["num_train_epochs"])
    steps = epochs * math.ceil(len(fold["train"]) / batch_size)
    optimizer, scheduler = make_optimizer(model, train, steps)
    from modeling_mgcma.training.alignment_gradient import (
        alignment_exempt_parameters,
        alignment_module_parameters,
        alignment_objective,
        other_parameters,
        shared_parameters,
    )  # fmt: skip
    from modeling_mgcma.training.loss_schedule import alignment_loss_scale

    objective = {key: train.get(key, default) for key, default in OBJECTIVE_DEFAULTS.items()}
    is_mgcma = hasattr(model, "mgcma")  # the concat baseline's loss is its cross-entropy alone
    model.train()
    shared = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith(("classifier.", "head."))]
    objective_shared = shared_parameters(model) if is_mgcma else None
    objective_others = other_parameters(model) if is_mgcma else None
    objective_exempt = alignment_exempt_parameters(model, objective["alignment_gradient_encoders"]) if is_mgcma else None
    objective_uncapped = (alignment_module_parameters(model, objective["alignment_gradient_balance_on"])
                          if is_mgcma else None)  # fmt: skip
    best_ua, best_state, curves, step = -1.0, None, [], 0
    for epoch in range(epochs):
        sums, count, probes = {}, 0, []
        for batch in batches(fold["train"], processor, batch_size, generator):
            scale = alignment_loss_scale(step, steps, objective["alignment_loss_warmup"])
            out = model(**batch)
            probe = None
            if probe_every and step % probe_every == 0:
                probe = _term_gradient_norms(model, out, shared, objective["alignment_gradient_balance"],
                                             objective["alignment_gradient_projection"], scale)  # fmt: skip
            if is_mgcma:  # as MGCMATrainer.compute_loss: warm-up, projection and balance of the alignment losses
                loss = alignment_objective(out, model.config, objective_shared,
                                           objective["alignment_gradient_balance"],
                                           objective["alignment_gradient_projection"], scale,
                                           others=objective_others, exempt=objective_exempt,
                                           uncapped=objective_uncapped)  # fmt: skip
            else:
                loss = out["loss"]
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), train["max_grad_norm"] or float("inf"))
            if probe is not None:
                probe["clip_kept"] = min(1.0, (train["max_grad_norm"] or float("inf")) / max(float(norm), 1e-12))
                probes.append(probe)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            for key in ("loss_ce", "loss_da", "loss_ia"):
                if out.get(key) is not None:
                    sums[key] = sums.get(key, 0.0) + float(out[key].detach())
            if out.get("speech_embeds") is not None:  # L_IA on the classifier's features, whether trained or not
                with torch.no_grad():
                    x_s, x_t = F.normalize(out["speech_embeds"].float(), dim=-1), F.normalize(out["text_embeds"].float(), dim=-1)
                    sums["ia_probe"] = sums.get("ia_probe", 0.0) + float(instance_contrastive_loss(x_s, x_t, 0.07))
                    for key in ("speech_embeds", "text_embeds"):  # 0: the features no longer depend on the input
                        sums[f"{key[:-7]}_spread"] = sums.get(f"{key[:-7]}_spread", 0.0) + _spread(out[key])
            count += 1
        ua = evaluate(model, fold["validation"], processor)
        curves.append({"epoch": epoch + 1, "val_ua": ua, **{k: v / count for k, v in sums.items()}})
        for key in (probes[0] if probes else {}):
            curves[-1][key] = float(np.mean([p[key] for p in probes if key in p]))
        if log:
            log(curves[-1])
        if ua > best_ua:
            best_ua, best_state = ua, copy.deepcopy(model.state_dict())
        if stop_after_epochs is not None and epoch + 1 >= stop_after_epochs:
            break
    model.load_state_dict(best_state)
    return {"test_ua": evaluate(model, fold["test"], processor), "val_ua": best_ua, "curves": curves}


# ---------------------------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------------------------


def prepare_run(setting, recipe_name, corpus, seed, workdir, overrides=None, train_overrides=None, corpus_seed=None,
                test_per_class=None, text_model=None, utterances_per_session=UTTERANCES_PER_SESSION, speech_model=None):
    """(model, fold, processor, recipe values) of one run: the corpus (generated once per seed), its fold and the
    untrained model of `setting`, with the recipe's values after overrides. `text_model`: a pretrained text encoder's
    folder, used with its own tokenizer instead of the from-scratch encoder over the demo vocabulary."""
    from transformers import AutoTokenizer

    processor = word_processor(corpus_vocabulary(corpus), max_duration=DEFAULT_MAX_DURATION)
    if text_model is not None:
        processor.tokenizer = AutoTokenizer.from_pretrained(text_model)
    root = make_corpus(corpus, seed if corpus_seed is None else corpus_seed, Path(workdir), utterances_per_session,
                       test_per_class=test_per_class)
    fold = load_fold(root, processor, split_seed=seed)
    values = recipe_values(recipe_name, overrides, train_overrides, text_model, speech_model)
    model = build(setting, len(processor.tokenizer), values["config"], seed, text_model=text_model, corpus=corpus,
                  speech_model=speech_model)
    return model, fold, processor, values


def run_one(setting, recipe_name, corpus, seed, workdir, overrides=None, train_overrides=None, log=None, corpus_seed=None,
            probe_every=0, test_per_class=None, text_model=None, utterances_per_session=UTTERANCES_PER_SESSION,
            speech_model=None) -> dict:
    model, fold, processor, values = prepare_run(setting, recipe_name, corpus, seed, workdir, overrides, train_overrides,
                                                 corpus_seed, test_per_class, text_model, utterances_per_session,
                                                 speech_model=speech_model)  # fmt: skip
    started = time.perf_counter()
    result = train_and_test(model, fold, processor, values["train"], seed, log=log, probe_every=probe_every)
    result["seconds"] = time.perf_counter() - started
    result["recipe_values"] = values
    return result


def recipe_values(recipe_name, overrides=None, train_overrides=None, text_model=None, speech_model=None) -> dict:
    """What a run was trained with (the recipe's training values and config values after overrides, and the
    pretrained text encoder when there is one), recorded with its result so that a result from another recipe is
    never taken for this one."""
    spec = recipe(recipe_name)
    values = {"train": {**spec["train"], **(train_overrides or {})}, "config": {**spec["config"], **(overrides or {})}}
    if text_model is not None:
        values["text_model"] = Path(text_model).name
    if speech_model is not None:
        values["speech_model"] = Path(speech_model).name
    return values


def corpus_seed_offset(args, corpus: str) -> int:
    """Corpus seed = training seed + this offset, per corpus (`--corpus_offset 100` or `--corpus_offset demo=100`)."""
    offsets = {}
    for item in args.corpus_offset:
        name, _, value = item.rpartition("=")
        offsets[name or "*"] = int(value)
    return offsets.get(corpus, offsets.get("*", 0))


def cmd_table(args):
    """Runs every cell not yet recorded in `--results` under `--run_set` (one row per run, written when the run ends,
    so an interrupted table resumes), then prints the run set's table. `--config`, `--train` and `--text_model` apply
    to every cell (and are recorded)."""
    for recipe_name in args.recipes:
        for corpus in args.corpora:
            for seed in args.seeds:
                corpus_seed = seed + corpus_seed_offset(args, corpus)
                for setting in args.settings:
                    record = {"run_set": args.run_set, "recipe": recipe_name, "corpus": corpus,
                              "corpus_seed": corpus_seed, "test_per_class": args.test_per_class, "setting": setting,
                              "seed": seed}  # fmt: skip
                    recorded = learning_results.find_run(args.results, learning_results.run_key(record))
                    if recorded is not None:
                        expected = recipe_values(recipe_name, args.config, args.train, args.text_model, args.speech_model)
                        if recorded["recipe_values"] != expected:
                            raise SystemExit(
                                f"{args.results}: the run {record} was trained with {recorded['recipe_values']}, not "
                                f"with today's {recipe_name!r} recipe {expected}: record into another --run_set, or "
                                f"delete its rows (here and in {learning_results.curves_path(args.results).name}) to "
                                f"rerun that cell."
                            )
                        continue
                    r = run_one(setting, recipe_name, corpus, seed, args.workdir, overrides=args.config,
                                train_overrides=args.train, corpus_seed=corpus_seed, test_per_class=args.test_per_class,
                                text_model=args.text_model, speech_model=args.speech_model)
                    record.update({"test_ua": r["test_ua"], "val_ua": r["val_ua"], "seconds": round(r["seconds"], 1),
                                   "recipe_values": r["recipe_values"]})  # fmt: skip
                    learning_results.record_run(args.results, record, r["curves"])
                    print(json.dumps(record), flush=True)
    cmd_summary(args)


def cmd_summary(args):
    """The table of every run of `--run_set` in `--results` (learning_results.summary)."""
    learning_results.summary(args.results, args.run_set)


def cmd_curves(args):
    for seed in args.seeds:
        r = run_one(args.setting, args.recipe, args.corpora[0], seed, args.workdir, args.config, args.train,
                    corpus_seed=seed + corpus_seed_offset(args, args.corpora[0]), probe_every=args.probe_every,
                    test_per_class=args.test_per_class, text_model=args.text_model, speech_model=args.speech_model,
                    utterances_per_session=args.utterances_per_session,
                    log=lambda c: print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in c.items()}), flush=True))  # fmt: skip
        print(json.dumps({"seed": seed, "test_ua": round(r["test_ua"], 4), "val_ua": round(r["val_ua"], 4)}), flush=True)


def cmd_stages(args):
    """Per epoch, on one validation batch (eval mode): the spread of the features at every stage of the speech and
    text streams (projected encoder output, DAM, each TAM block), of the classifier's input, and the entropy of the
    cross-attentions. Shows where the features stop depending on the input when a run collapses."""
    corpus = args.corpora[0]
    for seed in args.seeds:
        model, fold, processor, values = prepare_run(args.setting, args.recipe, corpus, seed, args.workdir, args.config,
                                                     args.train, seed + corpus_seed_offset(args, corpus),
                                                     args.test_per_class, args.text_model, speech_model=args.speech_model)  # fmt: skip
        probe = next(batches(fold["validation"], processor, 32))

        def report(curve):
            model.eval()
            with torch.no_grad():
                out = model(**probe, output_hidden_states=True, output_attentions=True)
            model.train()
            entropy = lambda a: round(float(-(a.clamp_min(1e-12).log() * a).sum(-1).mean()), 3)  # noqa: E731
            print(json.dumps({
                "seed": seed, "epoch": curve["epoch"], "val_ua": round(curve["val_ua"], 3),
                "speech_stages": [round(_spread(h, out["speech_mask"]), 3) for h in out["speech_hidden_states"]],
                "text_stages": [round(_spread(h, out["text_mask"]), 3) for h in out["text_hidden_states"]],
                "classifier_input": [round(_spread(out[key]), 3) for key in ("speech_embeds", "text_embeds")],
                "cross_attention_entropy": [entropy(a) for a in (out.get("speech_cross_attentions") or ())]
                + [entropy(a) for a in (out.get("text_cross_attentions") or ())],
            }), flush=True)  # fmt: skip

        train_and_test(model, fold, processor, values["train"], seed, log=report, stop_after_epochs=args.epochs)


@torch.no_grad()
def stage_features(model, rows, processor) -> dict:
    """Masked-mean pooled speech and text features at every stage (projected encoder output, DAM, each TAM block)
    of a trained model, eval mode: {"speech": [stage arrays], "text": [...], "labels": array}."""
    model.eval()
    per_batch = {"speech": [], "text": [], "labels": []}
    for batch in batches(rows, processor, 32):
        out = model(**batch, output_hidden_states=True)
        for stream in ("speech", "text"):
            mask = out[f"{stream}_mask"].bool()
            per_batch[stream].append([masked_pool(h, mask).numpy() for h in out[f"{stream}_hidden_states"]])
        per_batch["labels"].append(batch["labels"].numpy())
    stages = {stream: [np.concatenate(stage) for stage in zip(*per_batch[stream])] for stream in ("speech", "text")}
    return {**stages, "labels": np.concatenate(per_batch["labels"])}


def linear_probe_predictions(train_x, train_y, test_x) -> np.ndarray:
    """Test predictions of a logistic regression fitted on standardised training features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    probe.fit(train_x, train_y)
    return probe.predict(test_x)


def linear_probe_ua(train_x, train_y, test_x, test_y) -> float:
    """Test UA of a logistic regression fitted on standardised training features."""
    return unweighted_accuracy(linear_probe_predictions(train_x, train_y, test_x), test_y)


def cue_subsets(rows, corpus: str) -> dict[str, np.ndarray]:
    """Masks over `rows` (utterances with text and label) by where their class is cued: "prosody_only" (an emotional
    class without any emotion keyword in the text: the class is in the prosody alone) and "lexical" (the class's
    keyword is in the text; the prosody may carry it too)."""
    from modeling_mgcma.data.demo_corpus import EMOTION_LABELS

    keywords = {label: set(words) for label, words in corpus_style(corpus).words[1].items() if label != "neutral"}
    every = set().union(*keywords.values())
    prosody_only, lexical = [], []
    for row in rows:
        words = set(re.findall(r"[a-z]+", row["text"].lower()))
        label = EMOTION_LABELS[row["label"]]
        prosody_only.append(label != "neutral" and not (words & every))
        lexical.append(label != "neutral" and bool(words & keywords[label]))
    return {"prosody_only": np.array(prosody_only), "lexical": np.array(lexical)}


def cmd_probes(args):
    """Train each setting as `curves` does (best epoch by validation UA), then fit a linear probe on the training
    sessions' pooled features at every stage (projected encoder output, after DAM, after each TAM block; speech,
    text and both) and report its UA on the test session: where along the stack the features stop generalising."""
    if "concat" in args.settings:
        raise SystemExit("probes: the concat baseline has no alignment stages; pass MGCMA settings (--settings S0 S4 ...).")
    corpus = args.corpora[0]
    for seed in args.seeds:
        for setting in args.settings:
            model, fold, processor, values = prepare_run(setting, args.recipe, corpus, seed, args.workdir, args.config,
                                                         args.train, seed + corpus_seed_offset(args, corpus),
                                                         args.test_per_class, args.text_model, speech_model=args.speech_model)  # fmt: skip
            result = train_and_test(model, fold, processor, values["train"], seed)
            train, test = stage_features(model, fold["train"], processor), stage_features(model, fold["test"], processor)
            names = ["projected"]  # hidden states follow the enabled modules in pipeline order; IAM adds none
            for module in model.config.enabled_modules:
                if module == "dam":
                    names.append("dam")
                elif module == "tam":
                    names += [f"tam{i + 1}" for i in range(model.config.num_alignment_layers)]
            if len(names) != len(train["speech"]):
                raise RuntimeError(f"{len(train['speech'])} stages of features for the stage names {names}")
            subsets = cue_subsets(fold["test"], corpus)
            stages, cues = {}, {}
            for i, name in enumerate(names):
                stages[name], cues[name] = {}, {}
                for stream, x_train, x_test in (
                    ("speech", train["speech"][i], test["speech"][i]),
                    ("text", train["text"][i], test["text"][i]),
                    ("both", np.hstack([train["speech"][i], train["text"][i]]), np.hstack([test["speech"][i], test["text"][i]])),
                ):  # fmt: skip
                    predicted = linear_probe_predictions(x_train, train["labels"], x_test)
                    stages[name][stream] = round(unweighted_accuracy(predicted, test["labels"]), 4)
                    # accuracy on the utterances cued in the prosody alone / in the words: what the stage knows of each cue
                    cues[name][stream] = {cue: round(float((predicted[m] == test["labels"][m]).mean()), 4)
                                          for cue, m in subsets.items() if m.any()}  # fmt: skip
            print(json.dumps({"setting": setting, "seed": seed, "test_ua": round(result["test_ua"], 4),
                              "val_ua": round(result["val_ua"], 4), "probe_test_ua": stages,
                              "probe_cue_accuracy": cues}), flush=True)  # fmt: skip


def gradient_report(model, batch) -> dict:
    """Norm of each loss term's gradient (as weighted in the total loss) on each group of shared parameters, and
    the span (max - min per row, mean over rows) of each contrastive loss's logits."""
    from modeling_mgcma.modeling_mgcma import gaussian_wasserstein_distance

    groups = {
        "speech_encoder": "mgcma.speech_encoder.", "text_encoder": "mgcma.text_encoder.",
        "projections": "mgcma.speech_projection.|mgcma.text_projection.",
        "dam": "mgcma.distribution_alignment.", "tam": "mgcma.token_alignment.", "classifier": "classifier.",
    }  # fmt: skip
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    out = model(**batch)
    config = model.config
    terms = {
        "ce": config.classification_loss_weight * out.loss_ce,
        "da": config.distribution_loss_weight * out.loss_da if out.loss_da is not None else None,
        "ia": config.instance_loss_weight * out.loss_ia if out.loss_ia is not None else None,
    }
    report = {"losses": {k: float(v) for k, v in (("ce", out.loss_ce), ("da", out.loss_da), ("ia", out.loss_ia)) if v is not None}}
    total = None
    for term, value in terms.items():
        if value is None:
            continue
        grads = torch.autograd.grad(value, [p for _, p in named], retain_graph=True, allow_unused=True)
        norms = {}
        for group, prefixes in groups.items():
            squares = [g.pow(2).sum() for (n, _), g in zip(named, grads) if g is not None and any(n.startswith(x) for x in prefixes.split("|"))]
            norms[group] = float(torch.stack(squares).sum().sqrt()) if squares else 0.0
        norms["all"] = float(torch.stack([g.pow(2).sum() for g in grads if g is not None]).sum().sqrt())
        report[f"grad_{term}"] = norms
        total = grads if total is None else [b if a is None else a if b is None else a + b for a, b in zip(total, grads)]
    report["grad_total_norm"] = float(torch.stack([g.pow(2).sum() for g in total if g is not None]).sum().sqrt())
    with torch.no_grad():
        if out.speech_mu is not None:
            distance = gaussian_wasserstein_distance(out.speech_mu, out.speech_sigma, out.text_mu, out.text_sigma)
            if config.distribution_distance == "mean":
                distance = distance / out.speech_mu.shape[-1]
            logits = -model.mgcma.similarity_parameters()[0] * distance / config.temperature
            report["da_logit_span"] = float((logits.amax(1) - logits.amin(1)).mean())
            report["W_mean"] = float(distance.mean())
        x_s, x_t = F.normalize(out.speech_embeds, dim=-1), F.normalize(out.text_embeds, dim=-1)
        logits = x_s @ x_t.T / config.temperature
        report["ia_logit_span"] = float((logits.amax(1) - logits.amin(1)).mean())
    return report


def cmd_diagnose(args):
    torch.manual_seed(0)
    processor = word_processor(corpus_vocabulary(args.corpora[0]), max_duration=DEFAULT_MAX_DURATION)
    root = make_corpus(args.corpora[0], 0, Path(args.workdir))
    fold = load_fold(root, processor)
    batch = next(batches(fold["train"][:8], processor, 8))
    overrides = args.config or {}
    for width in args.widths:
        if width == 768:  # the paper's size: random wav2vec2-base / BERT-base sized encoders, 12 heads, 6 blocks
            config = MGCMAConfig(text_config={"model_type": "bert", "vocab_size": len(processor.tokenizer)}, **overrides)
            model = MGCMAForEmotionClassification(config)
            model.freeze_feature_encoder()  # as MGCMATrainer does with its default training arguments
        else:
            model = build("S0", len(processor.tokenizer), overrides, 0, width=width, corpus=args.corpora[0])
        model.train()
        report = gradient_report(model, batch)
        print(json.dumps({"width": width, **report}, indent=None), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("table", "summary", "curves", "diagnose", "stages", "probes"))
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS))
    parser.add_argument("--setting", default="S0")
    parser.add_argument("--recipes", nargs="+", default=["demo", "plain"])
    parser.add_argument("--recipe", default="plain")
    parser.add_argument("--corpora", nargs="+", default=list(CORPUS_VOICES),
                        choices=list(CORPUS_VOICES) + list(learning_families.MEMBERS),
                        help="the project's corpora (demo: tones, spoken: espeak) or family members "
                             "(learning_families.py)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--corpus_offset", nargs="+", default=["0"],
                        help="corpus seed = training seed + this; per corpus as CORPUS=N (e.g. demo=100 spoken=0)")
    parser.add_argument("--probe_every", type=int, default=0, help="curves: gradient probe every N steps")
    parser.add_argument("--test_per_class", type=positive_int, default=None,
                        help="table/curves/stages: test session (5) with this many utterances per class (default: "
                             "the corpus's 20); sessions 1-4, and so the trained models, are unchanged")
    parser.add_argument("--utterances_per_session", type=positive_int, default=UTTERANCES_PER_SESSION,
                        help=f"curves: corpora with this many utterances per session (default {UTTERANCES_PER_SESSION}), "
                             "cached apart from the table's; training, validation and test grow with it")
    parser.add_argument("--widths", nargs="+", type=int, default=[64, 768])
    parser.add_argument("--epochs", type=int, default=None, help="stages: stop after this many epochs")
    parser.add_argument("--config", help="JSON dict of MGCMAConfig overrides")
    parser.add_argument("--train", help="JSON dict of training overrides (learning_rate, max_grad_norm, ...)")
    parser.add_argument("--speech_model", default=None,
                        help="a pretrained speech encoder's folder (e.g. from pretrain_speech_encoder.py) instead of "
                             "the from-scratch one in every trained model")
    parser.add_argument("--text_model", default=None,
                        help="a pretrained text encoder's folder (with its tokenizer) instead of the from-scratch one "
                             "in every trained model; the speech encoder stays from scratch")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "mgcma-bench-learning"))
    parser.add_argument("--results", default=str(learning_results.DEFAULT_RESULTS),
                        help="table/summary: the results file, one row per run (per-epoch curves beside it, "
                             "*_curves.csv); runs already there are skipped")
    parser.add_argument("--run_set", default=learning_results.DEFAULT_RUN_SET,
                        help="table/summary: the run set the runs are recorded in and read from (e.g. "
                             "learning-test80); see learning_results.py")
    args = parser.parse_args(argv)
    if args.utterances_per_session != UTTERANCES_PER_SESSION and args.command != "curves":
        parser.error(f"--utterances_per_session is taken by `curves` only; `{args.command}` uses the "
                     f"{UTTERANCES_PER_SESSION}-utterance corpora (the table's runs are recorded for those).")
    for name in ("config", "train"):  # JSON dicts, parsed once for every command
        value = getattr(args, name)
        try:
            parsed = json.loads(value) if value else None
        except json.JSONDecodeError as error:
            parser.error(f"--{name} must be a JSON dict, got {value!r}: {error}")
        if parsed is not None and not isinstance(parsed, dict):
            parser.error(f"--{name} must be a JSON dict, got {value!r}")
        setattr(args, name, parsed)
    misplaced = sorted(set(args.config or {}) & set(OBJECTIVE_DEFAULTS))
    if misplaced:  # MGCMAConfig ignores them (with a warning): the run would silently train without them
        parser.error(f"{misplaced} are training arguments (MGCMATrainingArguments), not config values: pass them in "
                     f"--train, e.g. --train '{{\"{misplaced[0]}\": ...}}'.")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    commands = {"table": cmd_table, "summary": cmd_summary, "curves": cmd_curves, "diagnose": cmd_diagnose,
                "stages": cmd_stages, "probes": cmd_probes}  # fmt: skip
    commands[args.command](args)


if __name__ == "__main__":
    main()
