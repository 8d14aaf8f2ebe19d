# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""PyTorch MGCMA: Multi-Granularity Cross-Modal Alignment for speech + text emotion recognition.

Wang, Zhao, Sun, Wang, Zhou, Qin, "Enhancing Multimodal Emotion Recognition through Multi-Granularity Cross-Modal
Alignment", ICASSP 2025. Equation numbers in comments refer to that paper.

This file is shipped to the Hugging Face Hub: it imports only `torch`, `transformers` and its sibling
`configuration_mgcma`.

Choices where the paper is silent (each is a config option where a user could want the other choice):
- utterance Gaussian: masked mean of the token means and of the token standard deviations (`distribution_pooling`);
- sigma > 0 through sigma = exp(log sigma), log sigma clamped to +-10 (`sigma_activation`, `log_sigma_clamp`);
- p = 1/200, q = 4 from MAP's code, fixed by default (`similarity_scale`, `similarity_shift`, `learnable_similarity`);
- DAM passes the token means mu on to the next stage (`dam_output`);
- TAM blocks are post-LayerNorm transformer sub-layers (BERT style): self-attention, cross-attention, feed-forward,
  each with a residual connection; separate cross-attention weights per direction (`share_cross_attention`);
  pre-LayerNorm sub-layers in DAM and TAM instead, with a final LayerNorm after TAM, are an option (`alignment_norm`);
- IAM and the classifier use masked mean pooling (`pooling`), IAM on L2-normalised vectors
  (`normalize_instance_embeddings`);
- classifier: Linear(2D -> D) - GELU - Dropout - Linear(D -> classes) on [pooled speech; pooled text]
  (`classifier_features`; `"concat_projected"` adds the pooled projected encoder outputs, the input of the
  alignment stack, as a second pair);
- "module order" rewires a pipeline of stages over (speech, text) (`module_order`).
"""

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput, logging

from .configuration_mgcma import MGCMAConfig


logger = logging.get_logger(__name__)


# ---------------------------------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------------------------------


def gaussian_wasserstein_distance(
    mu_a: torch.Tensor, sigma_a: torch.Tensor, mu_b: torch.Tensor, sigma_b: torch.Tensor
) -> torch.Tensor:
    """Squared 2-Wasserstein distances between diagonal Gaussians, every row of `a` against every row of `b` (eq. 4).

    For diagonal covariances the general formula ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2) reduces to
    ||mu1 - mu2||^2 + ||sigma1 - sigma2||^2. It is computed as one squared Euclidean distance between the
    concatenations [mu; sigma], expanded as |a|^2 + |b|^2 - 2 a.b so that no `[N, M, D]` tensor is materialised.

    Args:
        mu_a, sigma_a: `[N, D]` means and standard deviations (not variances) of the first set.
        mu_b, sigma_b: `[M, D]` means and standard deviations of the second set.

    Returns:
        `[N, M]` distances, in the dtype of the inputs (pass fp32 tensors for fp32 results), clamped at 0 against
        rounding.
    """
    if mu_a.shape != sigma_a.shape or mu_b.shape != sigma_b.shape:
        raise ValueError(
            f"mu and sigma must have the same shape, got mu_a {tuple(mu_a.shape)}, sigma_a {tuple(sigma_a.shape)}, "
            f"mu_b {tuple(mu_b.shape)}, sigma_b {tuple(sigma_b.shape)}."
        )
    if mu_a.dim() != 2 or mu_b.dim() != 2 or mu_a.shape[-1] != mu_b.shape[-1]:
        raise ValueError(
            f"expected [N, D] and [M, D] inputs with the same D, got {tuple(mu_a.shape)} and {tuple(mu_b.shape)}."
        )
    a = torch.cat([mu_a, sigma_a], dim=-1)
    b = torch.cat([mu_b, sigma_b], dim=-1)
    squared = a.pow(2).sum(-1, keepdim=True) + b.pow(2).sum(-1).unsqueeze(0) - 2.0 * (a @ b.transpose(0, 1))
    return squared.clamp_min(0.0)


def _symmetric_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """(CE over rows + CE over columns) / 2 with the diagonal as targets: 1/(2N) sum_i (L_s2t_i + L_t2s_i)."""
    targets = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.transpose(0, 1), targets)) / 2


def distribution_contrastive_loss(
    mu_s: torch.Tensor,
    sigma_s: torch.Tensor,
    mu_t: torch.Tensor,
    sigma_t: torch.Tensor,
    scale: float | torch.Tensor,
    shift: float | torch.Tensor,
    temperature: float | torch.Tensor,
    distance: str = "sum",
) -> torch.Tensor:
    """Distribution-level contrastive loss L_DA (eqs. 5-8), computed in fp32.

    Sim(N_si, N_tj) = -scale * W(N_si, N_tj) + shift (eq. 5); matching speech/text pairs (the diagonal) are
    positives, all other pairs of the batch negatives; the loss is the mean of the speech-to-text and text-to-speech
    InfoNCE terms (eqs. 6-8).

    W sums squared differences over the D dimensions, so with layer-normalised means it grows linearly with D and a
    fixed p gives logits (and gradients) that grow with the width. `distance="mean"` uses W / D instead (the mean
    over dimensions), whose range does not depend on D; p = D_ref * p_ref then gives the same logits as
    `distance="sum"` with p_ref at width D_ref.

    Args:
        mu_s, sigma_s: `[N, D]` speech utterance Gaussians (standard deviations).
        mu_t, sigma_t: `[N, D]` text utterance Gaussians.
        scale: p > 0. shift: q. temperature: tau > 0.
        distance: `"sum"` (W, eq. 4) or `"mean"` (W / D).
    """
    if mu_s.shape[0] != mu_t.shape[0]:
        raise ValueError(f"need as many speech as text distributions, got {mu_s.shape[0]} and {mu_t.shape[0]}.")
    if distance not in ("sum", "mean"):
        raise ValueError(f"`distance` must be 'sum' or 'mean', got {distance!r}.")
    with torch.autocast(device_type=mu_s.device.type, enabled=False):
        w = gaussian_wasserstein_distance(mu_s.float(), sigma_s.float(), mu_t.float(), sigma_t.float())
        if distance == "mean":
            w = w / mu_s.shape[-1]
        similarity = -scale * w + shift  # eq. (5)
        return _symmetric_cross_entropy(similarity / temperature)  # eqs. (6)-(8)


def instance_contrastive_loss(x_s: torch.Tensor, x_t: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    """Instance-level contrastive loss L_IA (eqs. 9-11), computed in fp32.

    Logits are the dot products x_s_i . x_t_j / tau of the vectors as given: normalising them (as MGCMA does by
    default, see `MGCMAConfig.normalize_instance_embeddings`) is the caller's choice.

    Args:
        x_s: `[N, D]` utterance-level speech vectors. x_t: `[N, D]` text vectors. temperature: tau > 0.
    """
    if x_s.dim() != 2 or x_s.shape != x_t.shape:
        raise ValueError(f"expected two [N, D] tensors of the same shape, got {tuple(x_s.shape)} and {tuple(x_t.shape)}.")
    with torch.autocast(device_type=x_s.device.type, enabled=False):
        logits = x_s.float() @ x_t.float().transpose(0, 1) / temperature  # eqs. (9)-(10)
        return _symmetric_cross_entropy(logits)  # eq. (11)


def _distributed_world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def _exchange_sizes(local: int, device, group=None) -> list[int]:
    local_size = torch.tensor([local], device=device, dtype=torch.long)
    sizes = [torch.zeros_like(local_size) for _ in range(torch.distributed.get_world_size(group))]
    torch.distributed.all_gather(sizes, local_size, group=group)
    return [int(size.item()) for size in sizes]  # one host sync


def _gather_rows(tensor: torch.Tensor, sizes: list[int], group=None) -> torch.Tensor:
    import torch.distributed.nn.functional as dist_nn

    largest = max(sizes)
    if tensor.shape[0] < largest:
        padding = tensor.new_zeros((largest - tensor.shape[0], *tensor.shape[1:]))
        tensor = torch.cat([tensor, padding], dim=0)
    gathered = dist_nn.all_gather(tensor.contiguous(), group=group)
    if all(size == largest for size in sizes):
        return torch.cat(gathered, dim=0)
    return torch.cat([chunk[:size] for chunk, size in zip(gathered, sizes)], dim=0)


def gather_with_grad(*tensors: torch.Tensor, sizes: list[int] | None = None, group=None):
    """All-gather `[B, ...]` tensors of every process into `[sum_r B_r, ...]` (rank order) with gradients.

    `torch.distributed.nn.functional.all_gather` is differentiable (its backward sums, on each process, the gradients
    that all processes' losses send to that process's features); `torch.distributed.all_gather` is not. Processes may
    hold different batch sizes (the last batch of an epoch): the sizes are exchanged first (or given as `sizes`), each
    tensor is padded to the largest size for the collective and the padding cut off again, so no padded row ever
    becomes a negative. Several tensors travel in one collective (rows concatenated in the widest dtype and split
    again): one tensor in, one tensor out; several in, a tuple out.
    """
    if not tensors:
        raise ValueError("nothing to gather.")
    rows = tensors[0].shape[0]
    if any(t.shape[0] != rows for t in tensors):
        raise ValueError(f"tensors gathered together need one batch size, got {[tuple(t.shape) for t in tensors]}.")
    if sizes is None:
        sizes = _exchange_sizes(rows, tensors[0].device, group)
    if len(tensors) == 1:
        return _gather_rows(tensors[0], sizes, group)
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    gathered = _gather_rows(torch.cat([t.reshape(rows, -1).to(dtype) for t in tensors], dim=1), sizes, group)
    parts = torch.split(gathered, [math.prod(t.shape[1:]) for t in tensors], dim=1)
    return tuple(part.reshape(-1, *t.shape[1:]).to(t.dtype) for part, t in zip(parts, tensors))


# ---------------------------------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class MGCMAModelOutput(ModelOutput):
    """
    Output of [`MGCMAModel`] and [`MGCMAForEmotionClassification`]. As in every transformers head, `loss` comes first
    (when present) and `logits` next, in the dict and in the tuple (`return_dict=False`); fields that are None are
    left out of both.

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            Total loss: `w_ce * loss_ce + w_da * loss_da + w_ia * loss_ia` over the terms that exist (the bare model
            has no `loss_ce`). Present when labels are given (classifier) or `return_loss=True` (bare model).
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`, *optional*):
            Classification scores before softmax (classifier only).
        loss_ce (`torch.FloatTensor` of shape `()`, *optional*): cross-entropy L_CE.
        loss_da (`torch.FloatTensor` of shape `()`, *optional*): distribution-level contrastive loss L_DA (DAM on).
        loss_ia (`torch.FloatTensor` of shape `()`, *optional*): instance-level contrastive loss L_IA (IAM on).
        speech_embeds (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
            Pooled speech features after the last alignment stage (the classifier's speech input).
        text_embeds (`torch.FloatTensor` of shape `(batch_size, hidden_size)`): pooled text features, likewise.
        speech_projected_embeds, text_projected_embeds (`torch.FloatTensor` of shape `(batch_size, hidden_size)`,
            *optional*): the pooled projected encoder outputs, before any alignment stage; returned when the
            classifier reads them too (`classifier_features="concat_projected"`, with DAM or TAM on).
        speech_mu, speech_sigma (`torch.FloatTensor` of shape `(batch_size, hidden_size)`, *optional*):
            Utterance-level speech Gaussian N(mu, diag(sigma^2)) from DAM (sigma = standard deviation).
        text_mu, text_sigma (`torch.FloatTensor` of shape `(batch_size, hidden_size)`, *optional*): same for text.
        speech_last_hidden_state (`torch.FloatTensor` of shape `(batch_size, speech_frames, hidden_size)`):
            Speech token features after the last stage (text-aware speech when TAM is on).
        text_last_hidden_state (`torch.FloatTensor` of shape `(batch_size, text_tokens, hidden_size)`): likewise.
        speech_mask (`torch.LongTensor` of shape `(batch_size, speech_frames)`):
            1 on real frames, 0 on padding (like the input attention masks).
        text_mask (`torch.LongTensor` of shape `(batch_size, text_tokens)`): 1 on real tokens, 0 on padding.
        speech_hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            Speech token features `(batch_size, speech_frames, hidden_size)` entering the alignment stack (the projected
            encoder output), then after each alignment block in pipeline order: the DAM constructor's output (what DAM
            passes on, see `dam_output`) and each TAM block's output.
        text_hidden_states (`tuple(torch.FloatTensor)`, *optional*): the same for the text stream.
        speech_attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`):
            Self-attention probabilities `(batch_size, num_heads, speech_frames, speech_frames)` of the speech stream:
            the DAM speech constructor's, then each TAM block's.
        text_attentions (`tuple(torch.FloatTensor)`, *optional*): the same for the text stream.
        speech_cross_attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`):
            Per TAM block, speech queries over text keys: `(batch_size, num_heads, speech_frames, text_tokens)`.
        text_cross_attentions (`tuple(torch.FloatTensor)`, *optional*): per TAM block, text queries over speech keys,
            `(batch_size, num_heads, text_tokens, speech_frames)`.
        speech_encoder_hidden_states, speech_encoder_attentions (`tuple(torch.FloatTensor)`, *optional*):
            The speech encoder's own `hidden_states` / `attentions` (when it runs, i.e. from `input_values`). As in
            transformers, an encoder gives attention maps only with `attn_implementation="eager"`; the alignment
            modules compute theirs whenever asked (through the eager path, which gives the same outputs as SDPA).
        text_encoder_hidden_states, text_encoder_attentions (`tuple(torch.FloatTensor)`, *optional*): the text
            encoder's own, likewise.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    loss_ce: torch.FloatTensor | None = None
    loss_da: torch.FloatTensor | None = None
    loss_ia: torch.FloatTensor | None = None
    speech_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    speech_projected_embeds: torch.FloatTensor | None = None
    text_projected_embeds: torch.FloatTensor | None = None
    speech_mu: torch.FloatTensor | None = None
    speech_sigma: torch.FloatTensor | None = None
    text_mu: torch.FloatTensor | None = None
    text_sigma: torch.FloatTensor | None = None
    speech_last_hidden_state: torch.FloatTensor | None = None
    text_last_hidden_state: torch.FloatTensor | None = None
    speech_mask: torch.LongTensor | None = None
    text_mask: torch.LongTensor | None = None
    speech_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    text_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    speech_attentions: tuple[torch.FloatTensor, ...] | None = None
    text_attentions: tuple[torch.FloatTensor, ...] | None = None
    speech_cross_attentions: tuple[torch.FloatTensor, ...] | None = None
    text_cross_attentions: tuple[torch.FloatTensor, ...] | None = None
    speech_encoder_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    speech_encoder_attentions: tuple[torch.FloatTensor, ...] | None = None
    text_encoder_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    text_encoder_attentions: tuple[torch.FloatTensor, ...] | None = None


# ---------------------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------------------


def _is_tracing() -> bool:
    """True under torch.compile, torch.export and jit tracing: input checks that read tensor values are skipped there
    (they would force a host sync and break the graph); eager calls keep them."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing()


def _check_values(model: nn.Module) -> bool:
    """Whether `model` runs its input value checks (host reads of device values): never while tracing; else unless
    its `check_input_values` is False (a training setting, not saved: a trainer whose collator checks every batch on
    the host before copying it sets it to False, so that a training step waits for nothing)."""
    return not _is_tracing() and getattr(model, "check_input_values", True)


def check_speech_lengths(attention_mask: torch.Tensor, min_samples: int) -> None:
    """Refuse a batch with an utterance shorter than `min_samples` real samples (the speech encoder's receptive
    field). Reads the mask's values: the model calls it on its inputs, the fast step's collator on the CPU batch."""
    if not attention_mask.numel():
        return
    shortest = int(attention_mask.sum(-1).min())
    if shortest < min_samples:
        raise ValueError(
            f"an utterance of {shortest} samples is too short for the speech encoder, which needs at least {min_samples}."
        )


def check_not_empty(mask: torch.Tensor, name: str) -> None:
    """Refuse a batch with an utterance whose `[B, L]` mask has no real position (`name`: "speech frame", ...)."""
    empty = (~mask.bool().any(-1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"utterance(s) {empty} of the batch have no real {name} (their mask is all zeros).")


def check_label_range(labels: torch.Tensor, num_labels: int) -> None:
    """Refuse class ids outside `[0, num_labels)`."""
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_labels):
        raise ValueError(
            f"`labels` must lie in [0, {num_labels}), got values in [{int(labels.min())}, {int(labels.max())}]."
        )


def masked_pool(hidden_states: torch.Tensor, mask: torch.Tensor, mode: str = "mean") -> torch.Tensor:
    """Pool `[B, L, D]` features over the positions where `mask` (`[B, L]`, True = real) is set."""
    if mode == "first":
        return hidden_states[:, 0]
    mask_f = mask.unsqueeze(-1).to(hidden_states.dtype)
    if mode == "mean":
        return (hidden_states * mask_f).sum(1) / mask_f.sum(1).clamp_min(1.0)
    if mode == "max":
        return hidden_states.masked_fill(~mask.unsqueeze(-1), torch.finfo(hidden_states.dtype).min).amax(1)
    raise ValueError(f"unknown pooling mode {mode!r}; expected 'mean', 'max' or 'first'.")


def attention_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A `[B, L]` key mask (True = real) as the additive `[B, 1, 1, L]` bias of every attention that reads those keys:
    0 on real keys, the dtype's most negative value on padding. Built once per forward, not once per layer. None stays
    None (nothing is padded), so that SDPA may pick a kernel that takes no mask."""
    if mask is None:
        return None
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
    return bias[:, None, None, :]


class MGCMAAttention(nn.Module):
    """Multi-head attention (eqs. 1-3): softmax(Q K^T / sqrt(d)) V per head, heads concatenated and projected by W_o.

    Self-attention when `key_value_states` is None, cross-attention otherwise. Runs through
    `torch.nn.functional.scaled_dot_product_attention` (`attn_implementation="sdpa"`, the default) or through explicit
    matmuls and a softmax (`"eager"`, and whenever the attention probabilities are asked for); both give the same
    result. Padding keys are masked out by the additive `attention_bias`.
    """

    def __init__(self, config: MGCMAConfig, is_cross_attention: bool = False):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.dropout = config.attention_dropout_prob
        self.is_cross_attention = is_cross_attention
        if is_cross_attention:
            self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
            self.kv_proj = nn.Linear(config.hidden_size, 2 * config.hidden_size)
        else:
            self.qkv_proj = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_bias: torch.Tensor | None,
        key_value_states: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.is_cross_attention:
            if key_value_states is None:
                raise ValueError("cross-attention needs `key_value_states`.")
            query = self.q_proj(hidden_states)
            key, value = self.kv_proj(key_value_states).chunk(2, dim=-1)
        else:
            query, key, value = self.qkv_proj(hidden_states).chunk(3, dim=-1)
        query, key, value = self._split_heads(query), self._split_heads(key), self._split_heads(value)
        dropout = self.dropout if self.training else 0.0
        weights = None
        if output_attentions or self.config._attn_implementation == "eager":
            scores = torch.matmul(query, key.transpose(-1, -2)) * self.scaling
            if attention_bias is not None:
                scores = scores + attention_bias
            weights = scores.softmax(dim=-1, dtype=torch.float32).to(query.dtype)
            context = torch.matmul(F.dropout(weights, p=dropout, training=self.training), value)
        else:
            # every sequence has at least one real key, so no row of the bias is all-masked
            context = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_bias, dropout_p=dropout)
        batch, _, length, _ = context.shape
        context = context.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim)
        return self.out_proj(context), weights  # Concat(head_1..head_k) W_o


class MGCMAFeedForward(nn.Module):
    """Linear -> activation -> Linear. Dropout is applied by the caller on the D-wide output (as in BERT): dropping
    the 4D-wide intermediate too doubled the random-number cost, which on a CPU is a tenth of a training step."""

    def __init__(self, config: MGCMAConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(hidden_states)))


class MGCMAAttentionSublayer(nn.Module):
    """Residual attention sub-layer.

    `alignment_norm="post"`: LayerNorm(x + Dropout(Attention(x, context))) (BERT).
    `alignment_norm="pre"`: x + Dropout(Attention(LayerNorm(x), LayerNorm_c(context))) (GPT-2 / ViT): the residual
    stream passes through unnormalised, a cross-attention normalising its context with its own LayerNorm.
    """

    def __init__(self, config: MGCMAConfig, is_cross_attention: bool = False, attention: MGCMAAttention | None = None):
        super().__init__()
        self.pre_norm = config.alignment_norm == "pre"
        self.attention = attention if attention is not None else MGCMAAttention(config, is_cross_attention)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.context_layer_norm = (
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if self.pre_norm and is_cross_attention else None
        )

    def forward(self, hidden_states, attention_bias, key_value_states=None, output_attentions=False):
        if self.pre_norm:
            if key_value_states is not None:
                key_value_states = self.context_layer_norm(key_value_states)
            attended, weights = self.attention(
                self.layer_norm(hidden_states), attention_bias, key_value_states, output_attentions
            )
            return hidden_states + self.dropout(attended), weights
        attended, weights = self.attention(hidden_states, attention_bias, key_value_states, output_attentions)
        return self.layer_norm(hidden_states + self.dropout(attended)), weights


class MGCMAFeedForwardSublayer(nn.Module):
    """Residual feed-forward sub-layer: LayerNorm(x + Dropout(FFN(x))) (post-LN) or x + Dropout(FFN(LayerNorm(x)))
    (pre-LN)."""

    def __init__(self, config: MGCMAConfig):
        super().__init__()
        self.pre_norm = config.alignment_norm == "pre"
        self.feed_forward = MGCMAFeedForward(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states):
        if self.pre_norm:
            return hidden_states + self.dropout(self.feed_forward(self.layer_norm(hidden_states)))
        return self.layer_norm(hidden_states + self.dropout(self.feed_forward(hidden_states)))


class MGCMADistributionConstructor(GradientCheckpointingLayer):
    """Distribution constructor of DAM for one modality (Section 2.2).

    Multi-head self-attention over the token features x (eqs. 1-3) gives h = LayerNorm(x + MHSA(x)). Two branches
    read h, each "linear layers with a residual connection":
        mu_tok        = LayerNorm(h + MLP_mu(h))
        log_sigma_tok = h + MLP_sigma(h)
    With `alignment_norm="pre"`: h = x + MHSA(LayerNorm(x)), n = LayerNorm(h), mu_tok = h + MLP_mu(n) and
    log_sigma_tok = n + MLP_sigma(n).
    sigma_tok = exp(clamp(log_sigma_tok)) (MAP's parameterisation) or softplus(log_sigma_tok) keeps sigma > 0. The
    utterance Gaussian is the masked mean of the token means and of the token standard deviations
    (`distribution_pooling="mean"`) or the first token's (`"first"`).

    Returns `(mu_tokens, sigma_tokens, mu, sigma, self_attention_probabilities or None)`.
    """

    def __init__(self, config: MGCMAConfig):
        super().__init__()
        self.config = config
        self.pre_norm = config.alignment_norm == "pre"
        self.self_attention = MGCMAAttentionSublayer(config)
        self.mu_branch = MGCMAFeedForward(config)
        self.mu_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.sigma_branch = MGCMAFeedForward(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor | None, output_attentions=False):
        h, weights = self.self_attention(hidden_states, bias, output_attentions=output_attentions)
        if self.pre_norm:  # both branches read LayerNorm(h); mu's residual stream stays raw
            normed = self.mu_layer_norm(h)
            mu_tokens = h + self.dropout(self.mu_branch(normed))
            raw_sigma = normed + self.dropout(self.sigma_branch(normed))
        else:
            mu_tokens = self.mu_layer_norm(h + self.dropout(self.mu_branch(h)))
            raw_sigma = h + self.dropout(self.sigma_branch(h))
        if self.config.sigma_activation == "exp":
            clamp = self.config.log_sigma_clamp
            sigma_tokens = torch.exp(raw_sigma.clamp(-clamp, clamp))
        else:
            sigma_tokens = F.softplus(raw_sigma) + 1e-6
        if self.config.distribution_pooling == "first":
            mu, sigma = mu_tokens[:, 0], sigma_tokens[:, 0]
        else:
            mu, sigma = masked_pool(mu_tokens, mask, "mean"), masked_pool(sigma_tokens, mask, "mean")
        return mu_tokens, sigma_tokens, mu, sigma, weights


class MGCMADistributionAlignment(nn.Module):
    """DAM: one distribution constructor per modality; its loss is `distribution_contrastive_loss` (L_DA)."""

    def __init__(self, config: MGCMAConfig):
        super().__init__()
        self.speech_constructor = MGCMADistributionConstructor(config)
        self.text_constructor = MGCMADistributionConstructor(config)

    def forward(self, speech, speech_mask, speech_bias, text, text_mask, text_bias, output_attentions=False):
        return (
            self.speech_constructor(speech, speech_mask, speech_bias, output_attentions),
            self.text_constructor(text, text_mask, text_bias, output_attentions),
        )


class MGCMATokenAlignmentBlock(GradientCheckpointingLayer):
    """One TAM block (Section 2.3): self-attention within each modality, then cross-attention between them.

    Speech queries attend to text and text queries attend to speech; both cross-attentions read this block's
    self-attention outputs, and the next block's self-attention reads this block's cross-attention outputs. Each
    stream ends with a residual feed-forward sub-layer.

    Returns `(speech, text, attention probabilities)`, the last a tuple (speech self, text self, speech-to-text cross,
    text-to-speech cross) of `[B, heads, L_q, L_k]` tensors when `output_attentions`, else of Nones.
    """

    def __init__(self, config: MGCMAConfig):
        super().__init__()
        self.speech_self_attention = MGCMAAttentionSublayer(config)
        self.text_self_attention = MGCMAAttentionSublayer(config)
        self.speech_cross_attention = MGCMAAttentionSublayer(config, is_cross_attention=True)
        shared = self.speech_cross_attention.attention if config.share_cross_attention else None
        self.text_cross_attention = MGCMAAttentionSublayer(config, is_cross_attention=True, attention=shared)
        self.speech_feed_forward = MGCMAFeedForwardSublayer(config)
        self.text_feed_forward = MGCMAFeedForwardSublayer(config)

    def forward(self, speech, speech_bias, text, text_bias, output_attentions=False):
        speech, speech_self = self.speech_self_attention(speech, speech_bias, output_attentions=output_attentions)
        text, text_self = self.text_self_attention(text, text_bias, output_attentions=output_attentions)
        text_aware_speech, speech_cross = self.speech_cross_attention(
            speech, text_bias, key_value_states=text, output_attentions=output_attentions
        )
        speech_aware_text, text_cross = self.text_cross_attention(
            text, speech_bias, key_value_states=speech, output_attentions=output_attentions
        )
        attentions = (speech_self, text_self, speech_cross, text_cross)
        return self.speech_feed_forward(text_aware_speech), self.text_feed_forward(speech_aware_text), attentions


class MGCMATokenAlignment(nn.Module):
    """TAM: a stack of `num_alignment_layers` token-alignment blocks producing x~_s and x~_t.

    Returns `(speech, text, per-block outputs)`: the last is a list of `(speech, text, attentions)` of every block.
    """

    def __init__(self, config: MGCMAConfig):
        super().__init__()
        self.layers = nn.ModuleList([MGCMATokenAlignmentBlock(config) for _ in range(config.num_alignment_layers)])
        pre_norm = config.alignment_norm == "pre"
        # pre-LN: the residual streams leave the stack through one LayerNorm each (as GPT-2's `ln_f`)
        self.speech_final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if pre_norm else None
        self.text_final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if pre_norm else None

    def forward(self, speech, speech_bias, text, text_bias, output_attentions=False):
        per_block = []
        for layer in self.layers:
            speech, text, attentions = layer(speech, speech_bias, text, text_bias, output_attentions)
            per_block.append((speech, text, attentions))
        if self.speech_final_layer_norm is not None:
            speech, text = self.speech_final_layer_norm(speech), self.text_final_layer_norm(text)
        return speech, text, per_block


class MGCMAClassificationHead(nn.Module):
    """Linear(in -> D) -> GELU -> Dropout -> Linear(D -> num_labels), with dropout on the input."""

    def __init__(self, config: MGCMAConfig):
        super().__init__()
        pairs = 2 if config.classifier_reads_projected else 1
        in_features = config.hidden_size * (1 if config.classifier_features in ("speech", "text") else 2 * pairs)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.act = nn.GELU()
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, features):
        return self.out_proj(self.dropout(self.act(self.dense(self.dropout(features)))))


# ---------------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------------


class MGCMAPreTrainedModel(PreTrainedModel):
    config_class = MGCMAConfig
    base_model_prefix = "mgcma"
    main_input_name = "input_values"
    input_modalities = ("audio", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    # `MGCMAAttention` reads `config._attn_implementation` on every call, so `set_attn_implementation` may switch it
    # (transformers' source heuristic looks for its own AttentionInterface and would refuse).
    _can_set_attn_implementation_cached_value = True

    def _init_weights(self, module):
        # Linear / LayerNorm / Embedding of our own modules: transformers' default (normal(0, initializer_range),
        # zero bias, unit LayerNorm). The encoders are sub-models and are initialised by their own `_init_weights`.
        super()._init_weights(module)
        if isinstance(module, MGCMAModel) and module.log_similarity_scale is not None:
            init.constant_(module.log_similarity_scale, math.log(self.config.similarity_scale))
            init.constant_(module.similarity_shift, self.config.similarity_shift)

    @torch.no_grad()
    def initialize_weights(self):
        """Initialise every parameter not yet initialised (fresh model, or keys missing from a checkpoint): the
        encoders by their own `_init_weights`, the rest by ours.

        transformers' default walk guards code it does not ship by skipping any module whose direct parameters are all
        initialised, which also skips wrapper modules that own no direct parameter: wav2vec2's feature projection and
        positional convolution would keep a generic N(0, 0.02) (or nothing) whenever the speech encoder's weights are
        missing from a checkpoint. Every `_init_weights` here goes through `transformers.initialization`, which skips
        loaded tensors by their own flag, so the walk runs without that guard.
        """

        def walk(module: nn.Module, initialize):
            for child in module.children():
                walk(child, child._initialize_weights if isinstance(child, PreTrainedModel) else initialize)
            initialize(module, False)

        with init.guard_torch_init_functions():
            walk(self, self._initialize_weights)

    def save_pretrained(self, save_directory, *args, **kwargs):
        # transformers writes `auto_map` only for the class being saved; record both model classes so that a saved
        # folder answers AutoModel and AutoModelForAudioClassification alike (the code file holds both).
        if type(self)._auto_class is not None:
            module = type(self).__module__.split(".")[-1]
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            auto_map.setdefault("AutoModel", f"{module}.MGCMAModel")
            auto_map.setdefault("AutoModelForAudioClassification", f"{module}.MGCMAForEmotionClassification")
            self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)

    @classmethod
    def from_encoders(cls, speech_model: str | PreTrainedModel, text_model: str | PreTrainedModel, **config_kwargs):
        """Build an MGCMA model whose encoders are initialised from pretrained checkpoints.

        Args:
            speech_model: a Hub id or local folder of a speech encoder (e.g. `"facebook/wav2vec2-base"`), or a loaded
                model.
            text_model: a Hub id or local folder of a text encoder (e.g. `"bert-base-uncased"`), or a loaded model.
            config_kwargs: any other `MGCMAConfig` argument (e.g. `num_alignment_layers=6`, `id2label=...`), and
                `attn_implementation` (`"sdpa"` or `"eager"`, for the alignment modules and both encoders; by default
                each keeps its own).
        """
        attn_implementation = config_kwargs.pop("attn_implementation", None)
        load_kwargs = {} if attn_implementation is None else {"attn_implementation": attn_implementation}
        speech = speech_model if isinstance(speech_model, nn.Module) else AutoModel.from_pretrained(speech_model, **load_kwargs)
        text = text_model if isinstance(text_model, nn.Module) else AutoModel.from_pretrained(text_model, **load_kwargs)
        for name, encoder in (("speech", speech), ("text", text)):
            if getattr(encoder.config, "is_encoder_decoder", False):
                raise ValueError(f"the {name} model {type(encoder).__name__} is an encoder-decoder; pass an encoder.")
        own = [(encoder, encoder.config._attn_implementation) for encoder in (speech, text)]
        config = MGCMAConfig(speech_config=speech.config, text_config=text.config, **config_kwargs)
        for encoder, implementation in own:  # the new config copied its unset value down into the encoders' configs
            encoder.config._attn_implementation_internal = implementation
        model = cls(config, speech_encoder=speech, text_encoder=text)
        if attn_implementation is not None:
            model.set_attn_implementation(attn_implementation)
        return model


def _drop_pooler(text_encoder: nn.Module) -> nn.Module:
    # BERT-like encoders carry a pooler that MGCMA never uses; dropping it keeps every parameter trained.
    if getattr(text_encoder, "pooler", None) is not None:
        text_encoder.pooler = None
    return text_encoder


def _checked_features(modality: str, features: torch.Tensor, mask: torch.Tensor | None, width: int):
    """Validate precomputed encoder outputs `[B, L, width]` and their mask `[B, L]` (True = real); default: all real."""
    if features.dim() != 3 or features.shape[-1] != width:
        raise ValueError(f"`{modality}_features` must be [batch, length, {width}], got {tuple(features.shape)}.")
    if mask is None:
        return features, torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
    if tuple(mask.shape) != tuple(features.shape[:2]):
        raise ValueError(
            f"`{modality}_features_mask` shape {tuple(mask.shape)} does not match `{modality}_features` "
            f"{tuple(features.shape[:2])}."
        )
    return features, mask.bool()


@dataclass
class _AlignmentStages:
    """What the alignment pipeline of one forward pass produced: the features after the last stage, the losses, the
    utterance Gaussians, and every stage's hidden states and attention maps (in pipeline order)."""

    speech: torch.Tensor
    text: torch.Tensor
    speech_states: list = field(default_factory=list)
    text_states: list = field(default_factory=list)
    speech_attentions: list = field(default_factory=list)
    text_attentions: list = field(default_factory=list)
    speech_cross: list = field(default_factory=list)
    text_cross: list = field(default_factory=list)
    loss_da: torch.Tensor | None = None
    loss_ia: torch.Tensor | None = None
    speech_mu: torch.Tensor | None = None
    speech_sigma: torch.Tensor | None = None
    text_mu: torch.Tensor | None = None
    text_sigma: torch.Tensor | None = None


class MGCMAModel(MGCMAPreTrainedModel):
    """The MGCMA backbone: encoders, projections and the alignment pipeline (DAM, TAM, IAM in `module_order`).

    Inputs are either raw (`input_values` + `input_ids`, run through the encoders) or precomputed encoder outputs
    (`speech_features` + `text_features`, e.g. from a feature cache when the encoders are frozen).
    """

    def __init__(self, config: MGCMAConfig, speech_encoder: nn.Module | None = None, text_encoder: nn.Module | None = None):
        super().__init__(config)
        self.speech_encoder = speech_encoder if speech_encoder is not None else AutoModel.from_config(config.speech_config)
        self.text_encoder = _drop_pooler(
            text_encoder if text_encoder is not None else AutoModel.from_config(config.text_config)
        )
        speech_width, text_width = config.speech_config.hidden_size, config.text_config.hidden_size
        self.speech_projection = (
            nn.Linear(speech_width, config.hidden_size) if speech_width != config.hidden_size else nn.Identity()
        )
        self.text_projection = (
            nn.Linear(text_width, config.hidden_size) if text_width != config.hidden_size else nn.Identity()
        )
        self.distribution_alignment = MGCMADistributionAlignment(config) if config.use_distribution_alignment else None
        self.token_alignment = MGCMATokenAlignment(config) if config.use_token_alignment else None
        # IAM has no parameters; p and q belong to DAM and exist only when it does.
        if config.use_distribution_alignment and config.learnable_similarity:
            self.log_similarity_scale = nn.Parameter(torch.tensor(math.log(config.similarity_scale)))
            self.similarity_shift = nn.Parameter(torch.tensor(float(config.similarity_shift)))
        else:
            self.log_similarity_scale = None
            self.similarity_shift = None
        # A training setting, not saved with the model (set from the trainer's `gather_distributed_negatives`): when
        # True and torch.distributed runs more than one process, the contrastive losses use the features of every
        # process as negatives (`gather_with_grad`), as open_clip's loss does; otherwise the local batch.
        self.gather_distributed_negatives = False
        # Also a training setting: keep both encoders in eval mode (no dropout, no SpecAugment) under `train()`, as
        # cached-feature training computes them (set by `modeling_mgcma.training.feature_cache.freeze_encoders_in_eval_mode`).
        self.encoders_in_eval_mode = False
        # Also a training setting: False skips the input value checks that read device values (see `_check_values`).
        self.check_input_values = True
        for encoder in (speech_encoder, text_encoder):
            # An encoder built elsewhere shares its config object with ours; building `MGCMAConfig` around it resets
            # the sub-config's attention implementation to None (the unset top-level value is copied down). Resolve
            # it as the encoder itself would at construction.
            if encoder is not None and encoder.config._attn_implementation is None:
                encoder.config._attn_implementation_internal = encoder._check_and_adjust_attn_implementation(
                    None, is_init_check=True
                )
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        """The text encoder's token embeddings (the only vocabulary-indexed input of the model)."""
        return self.text_encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.text_encoder.set_input_embeddings(value)

    # -- encoders ------------------------------------------------------------------------------------------------------

    def freeze_feature_encoder(self):
        """Stop gradients into the speech encoder's convolutional feature encoder."""
        self.speech_encoder.freeze_feature_encoder()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.encoders_in_eval_mode:
            self.speech_encoder.eval()
            self.text_encoder.eval()
        return self

    @property
    def min_speech_samples(self) -> int:
        """Fewest raw samples the speech encoder turns into at least one frame (its receptive field)."""
        if getattr(self, "_min_speech_samples", None) is None:
            candidates = torch.arange(1, 1 << 16)
            lengths = self.speech_encoder._get_feat_extract_output_lengths(candidates)
            enough = (lengths >= 1).nonzero()
            if enough.numel() == 0:
                raise ValueError("the speech encoder makes no frame from any clip shorter than 4 s at 16 kHz.")
            self._min_speech_samples = int(candidates[enough[0, 0]])
        return self._min_speech_samples

    def speech_frame_mask(self, attention_mask: torch.Tensor | None, num_frames: int, batch_size: int, device):
        """Frame-level mask (True = real frame) from a sample-level `attention_mask` of the raw audio."""
        if attention_mask is None:
            return torch.ones(batch_size, num_frames, dtype=torch.bool, device=device)
        lengths = self.speech_encoder._get_feat_extract_output_lengths(attention_mask.sum(-1))
        return torch.arange(num_frames, device=device)[None, :] < lengths.to(device)[:, None]

    def encode_speech(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """Speech encoder outputs `[B, frames, H_speech]` and the frame mask, before projection."""
        outputs, mask = self._run_speech_encoder(input_values, attention_mask)
        return outputs.last_hidden_state, mask

    def encode_text(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ):
        """Text encoder outputs `[B, tokens, H_text]` and the token mask, before projection."""
        outputs, mask = self._run_text_encoder(input_ids, attention_mask, token_type_ids)
        return outputs.last_hidden_state, mask

    def _run_speech_encoder(self, input_values, attention_mask, **encoder_kwargs):
        if input_values.dim() != 2:
            raise ValueError(
                f"`input_values` must be [batch, samples] mono 16 kHz audio, got shape {tuple(input_values.shape)}; "
                "use MGCMAProcessor to prepare raw audio."
            )
        if attention_mask is not None:
            if attention_mask.shape != input_values.shape:
                raise ValueError(
                    f"`speech_attention_mask` shape {tuple(attention_mask.shape)} does not match `input_values` "
                    f"shape {tuple(input_values.shape)}."
                )
            if _check_values(self):  # a host read of a device value; see `_check_values`
                check_speech_lengths(attention_mask, self.min_speech_samples)
        outputs = self.speech_encoder(input_values, attention_mask=attention_mask, return_dict=True, **encoder_kwargs)
        hidden = outputs.last_hidden_state
        return outputs, self.speech_frame_mask(attention_mask, hidden.shape[1], hidden.shape[0], hidden.device)

    def _run_text_encoder(self, input_ids, attention_mask, token_type_ids, **encoder_kwargs):
        if input_ids.dim() != 2:
            raise ValueError(f"`input_ids` must be [batch, tokens], got shape {tuple(input_ids.shape)}.")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        elif attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"`text_attention_mask` shape {tuple(attention_mask.shape)} does not match `input_ids` shape "
                f"{tuple(input_ids.shape)}."
            )
        if token_type_ids is not None:
            encoder_kwargs["token_type_ids"] = token_type_ids
        outputs = self.text_encoder(input_ids, attention_mask=attention_mask, return_dict=True, **encoder_kwargs)
        return outputs, attention_mask.bool()

    # -- losses --------------------------------------------------------------------------------------------------------

    def _gather(self, *tensors, sizes: list[int]):
        """The global batch of a contrastive loss's tensors (one collective), or the tensors as given in one process
        or with `gather_distributed_negatives` off. `sizes` holds the per-process batch sizes: the first gather of a
        forward pass exchanges them, the next ones reuse them."""
        if not self.gather_distributed_negatives or _distributed_world_size() <= 1:
            return tensors
        if not sizes:
            sizes.extend(_exchange_sizes(tensors[0].shape[0], tensors[0].device))
        gathered = gather_with_grad(*tensors, sizes=sizes)
        return gathered if isinstance(gathered, tuple) else (gathered,)

    def similarity_parameters(self):
        """(p, q) of eq. 5: learned parameters when `learnable_similarity`, else the config's constants."""
        if self.log_similarity_scale is not None:
            return self.log_similarity_scale.float().exp(), self.similarity_shift.float()
        return self.config.similarity_scale, self.config.similarity_shift

    # -- forward -------------------------------------------------------------------------------------------------------

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        speech_attention_mask: torch.Tensor | None = None,
        text_attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        speech_features: torch.Tensor | None = None,
        speech_features_mask: torch.Tensor | None = None,
        text_features: torch.Tensor | None = None,
        text_features_mask: torch.Tensor | None = None,
        mask_time_indices: torch.Tensor | None = None,
        return_loss: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MGCMAModelOutput | tuple:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(batch_size, samples)`): 16 kHz mono waveforms.
            input_ids (`torch.LongTensor` of shape `(batch_size, tokens)`): transcript token ids.
            speech_attention_mask (`torch.LongTensor` of shape `(batch_size, samples)`): 1 on real samples.
            text_attention_mask (`torch.LongTensor` of shape `(batch_size, tokens)`): 1 on real tokens.
            token_type_ids (`torch.LongTensor`, *optional*): passed to the text encoder.
            speech_features (`torch.FloatTensor` of shape `(batch_size, frames, speech_hidden)`, *optional*):
                Precomputed speech encoder outputs, instead of `input_values` (cached-feature training).
            speech_features_mask (`torch.BoolTensor` of shape `(batch_size, frames)`, *optional*): real frames.
            text_features, text_features_mask: the same for the text encoder, instead of `input_ids`.
            mask_time_indices (`torch.BoolTensor` of shape `(batch_size, frames)`, *optional*): SpecAugment time masks
                for the speech encoder (wav2vec2 family), drawn by the caller instead of inside the encoder (the
                fast training step's collator draws them on the host); used only while the speech encoder trains.
            return_loss (`bool`, *optional*): compute L_DA and L_IA and their weighted sum as `loss`.
            output_attentions (`bool`, *optional*, defaults to `config.output_attentions`):
                Return the attention probabilities of every alignment attention (and of the encoders that run).
            output_hidden_states (`bool`, *optional*, defaults to `config.output_hidden_states`):
                Return the token features after every alignment block (and the encoders' hidden states).
            return_dict (`bool`, *optional*, defaults to `config.return_dict`): a `MGCMAModelOutput` or a tuple.

        Without `speech_attention_mask` (or `speech_features_mask`) every frame is taken as real and the attentions run
        without a mask, which lets SDPA pick its fastest kernel; likewise for text.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        encoder_kwargs = {"output_attentions": output_attentions, "output_hidden_states": output_hidden_states}
        self._check_inputs(
            kwargs, input_values=input_values, speech_attention_mask=speech_attention_mask,
            speech_features=speech_features, input_ids=input_ids, text_attention_mask=text_attention_mask,
            token_type_ids=token_type_ids, text_features=text_features,
        )  # fmt: skip
        speech_kwargs = dict(encoder_kwargs)
        if mask_time_indices is not None and input_values is not None and self.speech_encoder.training:
            speech_kwargs["mask_time_indices"] = mask_time_indices  # SpecAugment: while the encoder trains only
        speech, speech_mask, speech_encoder_outputs = self._speech_inputs(
            input_values, speech_attention_mask, speech_features, speech_features_mask, speech_kwargs
        )
        text, text_mask, text_encoder_outputs = self._text_inputs(
            input_ids, text_attention_mask, token_type_ids, text_features, text_features_mask, encoder_kwargs
        )
        self._check_encoded(speech, speech_mask, text, text_mask)

        speech, text = self.speech_projection(speech), self.text_projection(text)
        projected = {}
        if self.config.classifier_reads_projected:  # the classifier's second pair of inputs
            projected = {
                "speech_projected_embeds": masked_pool(speech, speech_mask, self.config.pooling),
                "text_projected_embeds": masked_pool(text, text_mask, self.config.pooling),
            }
        speech_padded = speech_attention_mask is not None or speech_features_mask is not None
        text_padded = text_attention_mask is not None or text_features_mask is not None
        speech_bias = attention_bias(speech_mask if speech_padded else None, speech.dtype)
        text_bias = attention_bias(text_mask if text_padded else None, text.dtype)
        stages = self._alignment_stages(
            speech, speech_mask, speech_bias, text, text_mask, text_bias, bool(return_loss), output_attentions
        )
        output = self._model_output(
            stages, speech_mask, text_mask, projected, speech_encoder_outputs, text_encoder_outputs,
            output_attentions, output_hidden_states,
        )  # fmt: skip
        return output if return_dict else output.to_tuple()

    def _check_inputs(self, unexpected: dict, **inputs):
        """Refuse unknown inputs, and inputs whose batch sizes differ."""
        if unexpected:
            raise ValueError(
                f"unexpected inputs {sorted(unexpected)}; MGCMA takes input_values, speech_attention_mask, input_ids, "
                "text_attention_mask, token_type_ids (or speech_features/text_features with their masks), "
                "mask_time_indices, return_loss, "
                "output_attentions, output_hidden_states, return_dict."
            )
        given = {name: value.shape[0] for name, value in inputs.items() if value is not None and value.dim() > 0}
        sizes = list(given.values())
        if any(size != sizes[0] for size in sizes[1:]):  # no set(): symbolic sizes under torch.export are unhashable
            raise ValueError(f"batch sizes differ between inputs: {given}.")

    def _check_encoded(self, speech, speech_mask, text, text_mask):
        """Refuse encoder outputs of different batch sizes, and utterances without one real frame or token."""
        if speech.shape[0] != text.shape[0]:
            raise ValueError(f"batch sizes differ: {speech.shape[0]} speech inputs but {text.shape[0]} text inputs.")
        if _check_values(self):  # host reads of device values; see `_check_values`
            check_not_empty(speech_mask, "speech frame")
            check_not_empty(text_mask, "text token")

    def _alignment_stages(
        self, speech, speech_mask, speech_bias, text, text_mask, text_bias, return_loss, output_attentions
    ) -> _AlignmentStages:
        """Run the enabled alignment modules in `module_order` over the projected (speech, text) features."""
        stages = _AlignmentStages(speech=speech, text=text, speech_states=[speech], text_states=[text])
        gather_sizes: list[int] = []  # per-process batch sizes, exchanged once per forward pass when gathering
        for stage in self.config.enabled_modules:
            if stage == "dam":
                speech_dist, text_dist = self.distribution_alignment(
                    speech, speech_mask, speech_bias, text, text_mask, text_bias, output_attentions
                )
                stages.speech_attentions.append(speech_dist[4])
                stages.text_attentions.append(text_dist[4])
                stages.speech_mu, stages.speech_sigma = speech_dist[2], speech_dist[3]
                stages.text_mu, stages.text_sigma = text_dist[2], text_dist[3]
                if return_loss:
                    scale, shift = self.similarity_parameters()
                    stages.loss_da = distribution_contrastive_loss(
                        *self._gather(stages.speech_mu, stages.speech_sigma, stages.text_mu, stages.text_sigma,
                                      sizes=gather_sizes),
                        scale=scale,
                        shift=shift,
                        temperature=self.config.temperature,
                        distance=self.config.distribution_distance,
                    )  # fmt: skip
                speech = self._dam_output(speech, speech_dist)
                text = self._dam_output(text, text_dist)
                stages.speech_states.append(speech)
                stages.text_states.append(text)
            elif stage == "tam":
                speech, text, per_block = self.token_alignment(speech, speech_bias, text, text_bias, output_attentions)
                for block_speech, block_text, (speech_self, text_self, to_text, to_speech) in per_block:
                    stages.speech_states.append(block_speech)
                    stages.text_states.append(block_text)
                    stages.speech_attentions.append(speech_self)
                    stages.text_attentions.append(text_self)
                    stages.speech_cross.append(to_text)
                    stages.text_cross.append(to_speech)
            elif stage == "iam" and return_loss:
                x_s = masked_pool(speech, speech_mask, self.config.pooling)
                x_t = masked_pool(text, text_mask, self.config.pooling)
                if self.config.normalize_instance_embeddings:
                    x_s, x_t = F.normalize(x_s.float(), dim=-1), F.normalize(x_t.float(), dim=-1)
                stages.loss_ia = instance_contrastive_loss(
                    *self._gather(x_s, x_t, sizes=gather_sizes), temperature=self.config.temperature
                )
        stages.speech, stages.text = speech, text
        return stages

    def _alignment_loss(self, loss_da, loss_ia):
        """w_da * L_DA + w_ia * L_IA over the terms that exist (None when neither does)."""
        terms = []
        if loss_da is not None:
            terms.append(self.config.distribution_loss_weight * loss_da)
        if loss_ia is not None:
            terms.append(self.config.instance_loss_weight * loss_ia)
        return sum(terms) if terms else None

    def _model_output(
        self, stages, speech_mask, text_mask, projected, speech_encoder_outputs, text_encoder_outputs,
        output_attentions, output_hidden_states,
    ) -> MGCMAModelOutput:  # fmt: skip
        """The backbone's output: the alignment losses and their weighted sum, pooled and token features, masks, and
        the hidden states and attentions that were asked for."""
        speech, text = stages.speech, stages.text
        return MGCMAModelOutput(
            loss=self._alignment_loss(stages.loss_da, stages.loss_ia),
            loss_da=stages.loss_da,
            loss_ia=stages.loss_ia,
            speech_embeds=masked_pool(speech, speech_mask, self.config.pooling),
            text_embeds=masked_pool(text, text_mask, self.config.pooling),
            **projected,
            speech_mu=stages.speech_mu,
            speech_sigma=stages.speech_sigma,
            text_mu=stages.text_mu,
            text_sigma=stages.text_sigma,
            speech_last_hidden_state=speech,
            text_last_hidden_state=text,
            speech_mask=speech_mask.long(),
            text_mask=text_mask.long(),
            speech_hidden_states=tuple(stages.speech_states) if output_hidden_states else None,
            text_hidden_states=tuple(stages.text_states) if output_hidden_states else None,
            speech_attentions=tuple(stages.speech_attentions) if output_attentions else None,
            text_attentions=tuple(stages.text_attentions) if output_attentions else None,
            speech_cross_attentions=tuple(stages.speech_cross) if output_attentions else None,
            text_cross_attentions=tuple(stages.text_cross) if output_attentions else None,
            # `or None`: an encoder running SDPA returns no attention maps (an empty tuple, with transformers' warning)
            speech_encoder_hidden_states=getattr(speech_encoder_outputs, "hidden_states", None),
            speech_encoder_attentions=getattr(speech_encoder_outputs, "attentions", None) or None,
            text_encoder_hidden_states=getattr(text_encoder_outputs, "hidden_states", None),
            text_encoder_attentions=getattr(text_encoder_outputs, "attentions", None) or None,
        )

    def _dam_output(self, features, distribution):
        mu_tokens, sigma_tokens = distribution[0], distribution[1]
        if self.config.dam_output == "input":
            return features
        if self.config.dam_output == "sample" and self.training:
            return mu_tokens + sigma_tokens * torch.randn_like(sigma_tokens)  # reparameterisation trick
        return mu_tokens

    def _speech_inputs(self, input_values, attention_mask, features, features_mask, encoder_kwargs):
        """(features `[B, frames, H_speech]`, frame mask, the encoder's own outputs or None)."""
        if (input_values is None) == (features is None):
            raise ValueError("pass exactly one of `input_values` (raw audio) or `speech_features` (encoder outputs).")
        if input_values is not None:
            outputs, mask = self._run_speech_encoder(input_values, attention_mask, **encoder_kwargs)
            return outputs.last_hidden_state, mask, outputs
        return *_checked_features("speech", features, features_mask, self.config.speech_config.hidden_size), None

    def _text_inputs(self, input_ids, attention_mask, token_type_ids, features, features_mask, encoder_kwargs):
        """(features `[B, tokens, H_text]`, token mask, the encoder's own outputs or None)."""
        if (input_ids is None) == (features is None):
            raise ValueError("pass exactly one of `input_ids` (token ids) or `text_features` (encoder outputs).")
        if input_ids is not None:
            outputs, mask = self._run_text_encoder(input_ids, attention_mask, token_type_ids, **encoder_kwargs)
            return outputs.last_hidden_state, mask, outputs
        return *_checked_features("text", features, features_mask, self.config.text_config.hidden_size), None

class MGCMAForEmotionClassification(MGCMAPreTrainedModel):
    """MGCMA with its emotion classifier; loss = w_ce * L_CE + w_da * L_DA + w_ia * L_IA when `labels` are given."""

    def __init__(self, config: MGCMAConfig, speech_encoder: nn.Module | None = None, text_encoder: nn.Module | None = None):
        super().__init__(config)
        self.mgcma = MGCMAModel(config, speech_encoder=speech_encoder, text_encoder=text_encoder)
        self.classifier = MGCMAClassificationHead(config)
        self.post_init()

    def freeze_feature_encoder(self):
        """Stop gradients into the speech encoder's convolutional feature encoder."""
        self.mgcma.freeze_feature_encoder()

    def _check_labels(self, labels: torch.Tensor):
        if labels.dim() != 1:
            raise ValueError(f"`labels` must be [batch] class ids, got shape {tuple(labels.shape)}.")
        if _check_values(self.mgcma):  # a host read of a device value; see `_check_values`
            check_label_range(labels, self.config.num_labels)

    def _classifier_features(self, outputs: MGCMAModelOutput) -> torch.Tensor:
        """The classifier's input (`classifier_features`): pooled aligned speech and/or text, and with
        `"concat_projected"` the pooled projected encoder outputs too."""
        if self.config.classifier_reads_projected:
            aligned, projected = (outputs.speech_embeds, outputs.text_embeds), (
                outputs.speech_projected_embeds, outputs.text_projected_embeds
            )
            return torch.cat([*aligned, *projected], dim=-1)
        if self.config.classifier_features in ("concat", "concat_projected"):
            return torch.cat([outputs.speech_embeds, outputs.text_embeds], dim=-1)
        if self.config.classifier_features == "speech":
            return outputs.speech_embeds
        return outputs.text_embeds

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        speech_attention_mask: torch.Tensor | None = None,
        text_attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        speech_features: torch.Tensor | None = None,
        speech_features_mask: torch.Tensor | None = None,
        text_features: torch.Tensor | None = None,
        text_features_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MGCMAModelOutput | tuple:
        r"""
        Same inputs as [`MGCMAModel.forward`], plus

        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class ids in `[0, num_labels)`. When given, the output carries `loss` and its components.

        The output starts with `loss` (when labels are given) and `logits`, in the dict and in the tuple.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if labels is not None:
            self._check_labels(labels)
        outputs = self.mgcma(
            input_values=input_values,
            input_ids=input_ids,
            speech_attention_mask=speech_attention_mask,
            text_attention_mask=text_attention_mask,
            token_type_ids=token_type_ids,
            speech_features=speech_features,
            speech_features_mask=speech_features_mask,
            text_features=text_features,
            text_features_mask=text_features_mask,
            return_loss=labels is not None,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            **kwargs,
        )
        logits = self.classifier(self._classifier_features(outputs))

        loss = loss_ce = None
        if labels is not None:
            if labels.shape[0] != logits.shape[0]:
                raise ValueError(f"got {labels.shape[0]} labels for a batch of {logits.shape[0]} utterances.")
            with torch.autocast(device_type=logits.device.type, enabled=False):
                loss_ce = F.cross_entropy(logits.float(), labels)
            # the paper's objective: w_ce L_CE + (w_da L_DA + w_ia L_IA); training may reshape it from the components
            loss = self.config.classification_loss_weight * loss_ce
            if outputs.loss is not None:
                loss = loss + outputs.loss
        # a new output, so that loss and logits come first (setting fields of `outputs` would append them last)
        backbone = {key: value for key, value in outputs.items() if key != "loss"}
        output = MGCMAModelOutput(loss=loss, logits=logits, loss_ce=loss_ce, **backbone)
        return output if return_dict else output.to_tuple()


__all__ = [
    "MGCMAPreTrainedModel",
    "MGCMAModel",
    "MGCMAForEmotionClassification",
    "MGCMAModelOutput",
    "gaussian_wasserstein_distance",
    "distribution_contrastive_loss",
    "instance_contrastive_loss",
    "masked_pool",
]
