# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Pretrain a small wav2vec2 speech encoder, self-supervised, on synthetic speech: the learning benchmark's
pretrained regime (`bench_learning.py ... --speech_model FOLDER`), since no pretrained speech checkpoint can be
downloaded on these machines.

    python benchmarks/pretrain_speech_encoder.py OUT_FOLDER            # 64-wide, 2 layers, 20 ms frames
    python benchmarks/pretrain_speech_encoder.py OUT_FOLDER --steps 3000 --seed 1

`Wav2Vec2ForPreTraining`'s objective (masked contrastive prediction of quantised frames + codebook diversity), as
transformers' `run_wav2vec2_pretraining_no_trainer.py` trains it, on the audio of synthetic corpora that share no
seed, voice seed or style with the benchmark's members: espeak-ng in many voice variants and the tone synthesiser with
other speakers. Labels are never read. The recipe is a pure function of its arguments (same seed, same checkpoint
on the same machine); the folder gets the encoder alone (`Wav2Vec2Model`, safetensors), its feature extractor and
`pretraining.json` (the arguments and the loss curve).

The recipe's defaults (2000 steps of 8 clips, lr 1e-3, masks of 2 frames at p = 0.2, zero-mean codevectors) take
the contrastive loss from its chance value ln 21 = 3.04 to 0.67 in ~8 minutes on one core. With transformers' U(0, 1)
codevectors and masks of 4-5 frames at p = 0.5-0.65 it stayed at chance for 600 steps (docs/ablations.md, "The
pretrained regime").
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForPreTraining, get_scheduler  # noqa: E402
from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices  # noqa: E402

from modeling_mgcma.training.from_scratch import DEMO_SPEECH_ENCODER, speech_encoder_config  # noqa: E402


# the pretraining corpora: (voice, CorpusStyle arguments); voice seeds 900+ are used nowhere else
PRETRAINING_CORPORA = (
    ("espeak", {"voices": 901, "cue_mix": {"text": 1, "prosody": 1, "both": 1}}),
    ("espeak", {"voices": 902, "vocabulary": "other", "jitter": 1.5}),
    ("tones", {"voices": 903, "neutral_cues": True}),
    ("tones", {"voices": 904, "vocabulary": "other", "noise": 0.01}),
)


def pretraining_audio(workdir: Path, utterances_per_session: int, seed: int) -> list[np.ndarray]:
    """Every utterance's waveform (float32, 16 kHz) of the pretraining corpora, labels unread."""
    from modeling_mgcma.data import generate_demo_corpus
    from modeling_mgcma.data.demo_corpus import CorpusStyle
    from modeling_mgcma.processing_mgcma import load_audio

    clips = []
    for index, (voice, style) in enumerate(PRETRAINING_CORPORA):
        root = generate_demo_corpus(workdir / f"pretraining-{index}-{seed}", seed=1000 + 10 * seed + index,
                                    utterances_per_session=utterances_per_session, voice=voice,
                                    style=CorpusStyle(**style))  # fmt: skip
        clips += [load_audio(path)[0] for path in sorted(root.glob("Session*/sentences/wav/*/*.wav"))]
    return clips


# masks of 2 frames at p = 0.2: with 4-5 frames at p = 0.5-0.65 this small model stayed at the chance loss
MASK_TIME_PROB, MASK_TIME_LENGTH = 0.2, 2


def pretraining_config(width: int, layers: int, heads: int, mask_time_prob: float = MASK_TIME_PROB,
                       mask_time_length: int = MASK_TIME_LENGTH):  # fmt: skip
    """The encoder (the benchmark's from-scratch speech encoder) with wav2vec2's pretraining heads sized for it."""
    return speech_encoder_config(
        width, layers, heads, 2 * width, **DEMO_SPEECH_ENCODER,
        num_codevector_groups=2, num_codevectors_per_group=64, codevector_dim=width, proj_codevector_dim=width,
        num_negatives=20, mask_time_prob=mask_time_prob, mask_time_length=mask_time_length, diversity_loss_weight=0.1,
        feat_quantizer_dropout=0.0,
    )  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--utterances_per_session", type=int, default=80)
    parser.add_argument("--mask_time_prob", type=float, default=MASK_TIME_PROB)
    parser.add_argument("--mask_time_length", type=int, default=MASK_TIME_LENGTH, help="frames (20 ms each)")
    parser.add_argument("--codevector_init", choices=("normal", "uniform"), default="normal",
                        help="normal: zero-mean codevectors; uniform: transformers' U(0, 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "mgcma-bench-learning"))
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    np.random.seed(args.seed)  # transformers' mask and negative samplers draw from the global generator
    clips = pretraining_audio(Path(args.workdir), args.utterances_per_session, args.seed)
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                         return_attention_mask=True)  # fmt: skip
    config = pretraining_config(args.width, args.layers, args.heads, args.mask_time_prob, args.mask_time_length)
    model = Wav2Vec2ForPreTraining(config)
    if args.codevector_init == "normal":
        # transformers draws the codevectors from U(0, 1): all-positive vectors whose projected targets start ~0.93
        # alike in cosine, and this small model then stays at the chance loss; zero-mean codevectors start ~0.1 alike
        with torch.no_grad():
            model.quantizer.codevectors.normal_()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=args.steps // 10, num_training_steps=args.steps)
    curve, started = [], time.perf_counter()
    model.train()
    for step in range(args.steps):
        chosen = rng.choice(len(clips), size=args.batch_size, replace=False)
        batch = extractor([clips[i] for i in chosen], sampling_rate=16000, padding=True, return_tensors="pt")
        frames = int(model._get_feat_extract_output_lengths(batch["input_values"].shape[-1]))
        sub_mask = model._get_feature_vector_attention_mask(frames, batch["attention_mask"])
        mask = _compute_mask_indices((args.batch_size, frames), config.mask_time_prob, config.mask_time_length,
                                     attention_mask=sub_mask, min_masks=2)  # fmt: skip
        negatives = _sample_negative_indices((args.batch_size, frames), config.num_negatives, mask_time_indices=mask)
        # gumbel temperature 2 -> 0.5, decayed per step as in wav2vec 2.0
        model.set_gumbel_temperature(max(2.0 * 0.999995 ** (step * 100), 0.5))
        out = model(batch["input_values"], attention_mask=batch["attention_mask"],
                    mask_time_indices=torch.tensor(mask, dtype=torch.bool),
                    sampled_negative_indices=torch.tensor(negatives, dtype=torch.long))  # fmt: skip
        loss = out.loss / int(mask.sum())  # per masked frame, as transformers' pretraining script
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == args.steps - 1:
            masked = int(mask.sum())  # both losses are sums over the masked frames
            entry = {"step": step, "loss": round(float(loss.detach()), 4),
                     "contrastive": round(float(out.contrastive_loss.detach()) / masked, 4),
                     "diversity": round(float(out.diversity_loss.detach()) / masked, 4),
                     "codevector_perplexity": round(float(out.codevector_perplexity.detach()), 2),
                     "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
            curve.append(entry)
            print(json.dumps(entry), flush=True)
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder = model.wav2vec2
    encoder.config.mask_time_prob = 0.0  # SpecAugment off for fine-tuning, as the from-scratch encoders
    encoder.save_pretrained(out_dir, safe_serialization=True)
    extractor.save_pretrained(out_dir)
    (out_dir / "pretraining.json").write_text(json.dumps({"arguments": vars(args), "corpora": PRETRAINING_CORPORA,
                                                          "clips": len(clips), "curve": curve}, indent=1) + "\n")  # fmt: skip
    if not math.isfinite(curve[-1]["loss"]):
        raise SystemExit("pretraining diverged (loss not finite)")
    print(f"saved the pretrained encoder to {out_dir}")


if __name__ == "__main__":
    main()
