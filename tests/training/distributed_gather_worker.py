# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""Run by tests/training/test_trainer_devices.py under a 2-process launcher (gloo on CPU); not a test module itself.

Every rank builds the same tiny model and the same global batch of 5 utterances (precomputed encoder features),
keeps its own rows (rank 0: 3, rank 1: 2 — uneven on purpose, like a last batch), lets `MGCMATrainer` set the
model's `gather_distributed_negatives` from its arguments, and computes L_DA, L_IA and their gradients. It also
computes, locally and without any distributed call, the same losses on the whole concatenated batch. Both results
go to `<out>/rank<k>.json`, with the number of collectives the forward pass made.
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from transformers import TrainingArguments

from modeling_mgcma import MGCMAForEmotionClassification
from modeling_mgcma import modeling_mgcma as modeling
from modeling_mgcma.modeling_mgcma import gather_with_grad
from modeling_mgcma.training.from_scratch import small_config
from modeling_mgcma.training.trainer import MGCMATrainer


ROWS_PER_RANK = (3, 2)
CALLS = {"size_exchanges": 0, "collectives": 0}


def counted(function, key):
    def wrapper(*args, **kwargs):
        CALLS[key] += 1
        return function(*args, **kwargs)

    return wrapper


def contrastive_loss_and_grads(model, inputs):
    model.zero_grad(set_to_none=True)
    outputs = model(**inputs)
    loss = outputs.loss_da + outputs.loss_ia
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return outputs, grads


def main(out_dir: str):
    torch.manual_seed(0)
    config = small_config(
        vocab_size=20, hidden_dropout_prob=0.0, attention_dropout_prob=0.0, classifier_dropout=0.0, learnable_similarity=True
    )
    model = MGCMAForEmotionClassification(config)
    model.eval()  # no dropout: the two computations must see identical activations

    args = TrainingArguments(output_dir=str(Path(out_dir) / "trainer"), report_to="none", use_cpu=True)
    trainer = MGCMATrainer(model=model, args=args)
    rank, world = trainer.accelerator.process_index, trainer.accelerator.num_processes
    flag_set = model.base_model.gather_distributed_negatives is True

    generator = torch.Generator().manual_seed(1)
    total = sum(ROWS_PER_RANK)
    speech = torch.randn(total, 7, config.speech_config.hidden_size, generator=generator)
    text = torch.randn(total, 5, config.text_config.hidden_size, generator=generator)
    speech_mask = torch.ones(total, 7, dtype=torch.bool)
    speech_mask[1, 5:] = False
    text_mask = torch.ones(total, 5, dtype=torch.bool)
    text_mask[3, 3:] = False
    labels = torch.tensor([0, 1, 2, 3, 1])
    start = sum(ROWS_PER_RANK[:rank])
    local = slice(start, start + ROWS_PER_RANK[rank])

    def inputs(rows):
        return {
            "speech_features": speech[rows], "speech_features_mask": speech_mask[rows],
            "text_features": text[rows], "text_features_mask": text_mask[rows], "labels": labels[rows],
        }  # fmt: skip

    # distributed: local rows, gathered negatives; DDP averages gradients over ranks, emulated by all_reduce / world
    exchange_sizes, all_gather_with_grad = modeling._exchange_sizes, dist_nn.all_gather
    modeling._exchange_sizes = counted(exchange_sizes, "size_exchanges")
    dist_nn.all_gather = counted(all_gather_with_grad, "collectives")
    try:
        outputs, grads = contrastive_loss_and_grads(model, inputs(local))
    finally:
        modeling._exchange_sizes, dist_nn.all_gather = exchange_sizes, all_gather_with_grad
    for grad in grads.values():
        dist.all_reduce(grad)
        grad /= world
    # reference: the whole batch in this one process, no gather
    model.base_model.gather_distributed_negatives = False
    reference, reference_grads = contrastive_loss_and_grads(model, inputs(slice(0, total)))

    # several tensors in one collective: the same rows as one collective each
    a, b = speech[local].reshape(ROWS_PER_RANK[rank], -1)[:, :3].contiguous(), labels[local].float()[:, None] * 2
    joint = gather_with_grad(a, b.double())
    multi_tensor_match = torch.equal(joint[0], gather_with_grad(a)) and torch.equal(joint[1], gather_with_grad(b.double()))
    multi_tensor_match = multi_tensor_match and joint[1].dtype == torch.float64 and joint[0].shape == (total, 3)

    max_grad_diff = max((grads[n] - reference_grads[n]).abs().max().item() for n in reference_grads)
    result = {
        "rank": rank,
        "world": world,
        "gather_flag_set": flag_set,
        "loss_da": outputs.loss_da.item(),
        "loss_ia": outputs.loss_ia.item(),
        "reference_loss_da": reference.loss_da.item(),
        "reference_loss_ia": reference.loss_ia.item(),
        "max_grad_diff": max_grad_diff,
        "num_grads": len(reference_grads),
        "grad_names_match": sorted(grads) == sorted(reference_grads),
        "size_exchanges": CALLS["size_exchanges"],  # six tensors gathered in one forward pass, one size exchange
        "collectives": CALLS["collectives"],  # one per contrastive loss: L_DA's four tensors, L_IA's two
        "multi_tensor_match": multi_tensor_match,
    }
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    # both ranks past their last collective, then a clean shutdown (exiting with gloo's threads alive can abort)
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1])
