# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""MGCMA model configuration.

This file is shipped to the Hugging Face Hub next to the weights: it imports only `transformers` (and the standard
library), so a folder written by `save_pretrained` loads with `trust_remote_code=True` where the `modeling_mgcma`
package is not installed.
"""

from transformers import AutoConfig
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec
from transformers.utils import logging


logger = logging.get_logger(__name__)

# The 4-class IEMOCAP label set of the paper, in id order (happy = IEMOCAP's "hap" + "exc").
# The model's default classes; `modeling_mgcma.data.EMOTION_LABELS` is the data layer's copy (tested equal).
DEFAULT_EMOTION_LABELS = ("angry", "happy", "sad", "neutral")

# Names of the three alignment modules, as used in `module_order`.
ALIGNMENT_MODULES = ("dam", "tam", "iam")
# The paper's order (Table III, S0): distribution -> token -> instance.
PAPER_MODULE_ORDER = ("dam", "tam", "iam")

# The paper's ablations: Table II (S1-S4, modules switched off) and Table III (S5-S9, module orders), as config
# arguments. S0 is the full model in the paper's order. Imported by run_mgcma.py, the tests and the model card.
PAPER_ABLATIONS = {
    "S0": {"module_order": ["dam", "tam", "iam"]},
    "S1": {"use_distribution_alignment": False},
    "S2": {"use_token_alignment": False},
    "S3": {"use_instance_alignment": False},
    "S4": {"use_distribution_alignment": False, "use_token_alignment": False, "use_instance_alignment": False},
    "S5": {"module_order": ["dam", "iam", "tam"]},
    "S6": {"module_order": ["iam", "dam", "tam"]},
    "S7": {"module_order": ["iam", "tam", "dam"]},
    "S8": {"module_order": ["tam", "dam", "iam"]},
    "S9": {"module_order": ["tam", "iam", "dam"]},
}

POOLING_MODES = ("mean", "max", "first")
ALIGNMENT_NORMS = ("post", "pre")
DISTRIBUTION_POOLING_MODES = ("mean", "first")
DISTRIBUTION_DISTANCES = ("sum", "mean")
SIGMA_ACTIVATIONS = ("exp", "softplus")
DAM_OUTPUTS = ("mu", "sample", "input")
CLASSIFIER_FEATURES = ("concat", "speech", "text", "concat_projected")
# Keys of older config.json files that are training arguments now (`MGCMATrainingArguments`): read and ignored.
TRAINING_SETTINGS = (
    "freeze_feature_encoder",
    "freeze_speech_encoder",
    "freeze_text_encoder",
    "gather_distributed_negatives",
    "alignment_loss_warmup",
    "alignment_gradient_balance",
    "alignment_gradient_projection",
)


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {list(allowed)}, got {value!r}.")


def _check_positive(name, value, allow_zero=False):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or (value == 0 and not allow_zero):
        kind = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"`{name}` must be {kind} number, got {value!r}.")


class MGCMAConfig(PreTrainedConfig):
    r"""
    Configuration of an MGCMA model (Multi-Granularity Cross-Modal Alignment, Wang et al., ICASSP 2025): a speech
    encoder and a text encoder followed by three alignment modules — distribution-based (DAM), token-based (TAM) and
    instance-based (IAM) — and an emotion classifier. The defaults reproduce the paper: wav2vec 2.0 Base + BERT base
    (uncased) sized encoders, D = 768, 12 heads, 6 token-alignment blocks, tau = 0.07, loss weights 1:1:1, modules
    in the order DAM -> TAM -> IAM, 4 classes (angry, happy, sad, neutral).

    The config describes the model and its loss as the paper defines it (the weighted sum of L_CE, L_DA and L_IA). How
    training treats those losses and the encoders is set by the training arguments
    (`modeling_mgcma.training.trainer.MGCMATrainingArguments`): encoder freezing, `gather_distributed_negatives`,
    `alignment_gradient_balance`, `alignment_gradient_projection` and `alignment_loss_warmup`. A config.json that
    still carries one of these loads with a warning, without it.

    Args:
        speech_config (`dict` or `PreTrainedConfig`, *optional*):
            Config of the speech encoder: any transformers speech encoder whose `AutoModel` returns
            `last_hidden_state` from raw `input_values` (wav2vec2, HuBERT, WavLM, ...). Defaults to a `Wav2Vec2Config`
            (the wav2vec 2.0 Base architecture).
        text_config (`dict` or `PreTrainedConfig`, *optional*):
            Config of the text encoder (BERT, RoBERTa, ...). Defaults to a `BertConfig` (bert-base-uncased).
        hidden_size (`int`, *optional*, defaults to 768):
            Width D of the alignment modules. Encoder outputs of another width are linearly projected to it.
        num_attention_heads (`int`, *optional*, defaults to 12):
            Heads k of every attention layer in DAM and TAM (d = D / k).
        num_alignment_layers (`int`, *optional*, defaults to 6):
            Number of token-alignment (TAM) blocks.
        intermediate_size (`int`, *optional*, defaults to 3072):
            Width of the feed-forward layers inside TAM blocks and of the DAM branch MLPs.
        hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation of the feed-forward layers.
        hidden_dropout_prob (`float`, *optional*, defaults to 0.1):
            Dropout on residual branches of DAM and TAM.
        attention_dropout_prob (`float`, *optional*, defaults to 0.0):
            Dropout on attention probabilities. Off by default (as in CLIP): with dropout, PyTorch's fused CPU
            attention kernel cannot be used and the attention falls back to unfused matmuls plus a random mask over
            every [L, L] score matrix (about a tenth of an alignment training step on a CPU).
        classifier_dropout (`float`, *optional*, defaults to 0.1):
            Dropout before each classifier layer.
        layer_norm_eps (`float`, *optional*, defaults to 1e-12):
            Epsilon of the layer norms.
        alignment_norm (`str`, *optional*, defaults to `"post"`):
            Where the LayerNorms of the DAM and TAM sub-layers sit (the paper does not say). `"post"`: after each
            residual sum, as in BERT, the encoders the paper uses. `"pre"`: on each sub-layer's input, the residual
            stream left unnormalised, and one final LayerNorm per stream after the last TAM block (GPT-2, ViT), which
            keeps an identity path from the encoders to the classifier. Trained from scratch on the synthetic corpora
            the two placements are level within the benchmark's noise (benchmarks/README.md, "Learning").
        initializer_range (`float`, *optional*, defaults to 0.02):
            Std of the normal initialiser of the alignment modules and classifier.
        temperature (`float`, *optional*, defaults to 0.07):
            tau of both contrastive losses (eqs. 7 and 10).
        similarity_scale (`float`, *optional*, defaults to 0.005):
            p in Sim = -p * W + q (eq. 5). The paper does not give it; 1/200 is the value of MAP's code, from which the
            distribution constructor comes.
        similarity_shift (`float`, *optional*, defaults to 4.0):
            q in eq. 5 (MAP's value). It adds the same constant to every logit of a row, so it cancels in the
            softmax; it is kept for fidelity to the equation.
        learnable_similarity (`bool`, *optional*, defaults to `False`):
            Learn p and q (p through its logarithm, so it stays positive) instead of keeping them fixed.
        distribution_distance (`str`, *optional*, defaults to `"sum"`):
            The distance W in eq. 5: `"sum"`, the squared 2-Wasserstein distance of eq. 4 (a sum over the D
            dimensions, so with a fixed p the logits of L_DA and their gradients grow with D), or `"mean"`, W / D,
            whose range does not depend on the width (p then multiplies a per-dimension distance: p = 768 / 200
            reproduces `"sum"` with p = 1/200 at D = 768).
        distribution_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of L_DA in the total loss.
        instance_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of L_IA in the total loss.
        classification_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of L_CE in the total loss.
        calibration_temperature (`float`, *optional*):
            Temperature T > 0 fitted on validation data (`run_mgcma.py --calibrate`); the pipeline, the command line
            and the ONNX runtime then serve softmax(logits / T). None: the plain softmax.
        use_distribution_alignment (`bool`, *optional*, defaults to `True`):
            Build DAM (switch off for the paper's ablation S1). A disabled module owns no parameters and adds no loss.
        use_token_alignment (`bool`, *optional*, defaults to `True`):
            Build TAM (ablation S2).
        use_instance_alignment (`bool`, *optional*, defaults to `True`):
            Compute L_IA (ablation S3; IAM has no parameters of its own).
        module_order (`list[str]`, *optional*, defaults to `["dam", "tam", "iam"]`):
            Order of the alignment stages (Table III). The modules form a pipeline over the pair (speech, text): DAM
            replaces the features by its output (see `dam_output`) and adds L_DA, TAM replaces them by the
            cross-attended features, IAM adds L_IA on the pooled features at its position. The classifier reads the
            features after the last stage.
        distribution_pooling (`str`, *optional*, defaults to `"mean"`):
            How token distributions become one utterance Gaussian: `"mean"` averages the token means and the token
            standard deviations over non-padding positions; `"first"` takes the first token's distribution.
        sigma_activation (`str`, *optional*, defaults to `"exp"`):
            How the sigma branch's output becomes a positive standard deviation: `"exp"` (sigma = exp(log sigma), as in
            MAP; log sigma is clamped to [-`log_sigma_clamp`, `log_sigma_clamp`]) or `"softplus"`.
        log_sigma_clamp (`float`, *optional*, defaults to 10.0):
            Bound on |log sigma| for the `"exp"` activation, so sigma stays finite in bf16 and fp32.
        dam_output (`str`, *optional*, defaults to `"mu"`):
            What DAM passes on to the next stage: the token means `"mu"`, a reparameterised sample `"sample"`
            (mu + sigma * eps while training, mu at inference), or the unchanged `"input"` features (DAM then only
            adds L_DA).
        pooling (`str`, *optional*, defaults to `"mean"`):
            Pooling of token sequences into utterance vectors for IAM and the classifier: masked `"mean"`, masked
            `"max"`, or the `"first"` token.
        normalize_instance_embeddings (`bool`, *optional*, defaults to `True`):
            L2-normalise the pooled vectors before the IAM dot products (as CLIP does). Unnormalised 768-d dot
            products divided by 0.07 saturate the softmax immediately.
        share_cross_attention (`bool`, *optional*, defaults to `False`):
            Use one cross-attention layer for both directions in each TAM block instead of one per direction.
        classifier_features (`str`, *optional*, defaults to `"concat"`):
            Classifier input: the concatenation of pooled speech and text after the alignment stages (`"concat"`), one
            modality only (`"speech"`, `"text"`), or `"concat_projected"`: those two and the pooled projected encoder
            outputs before any alignment stage (4 x hidden_size in all). The last gives the classifier the encoders'
            features directly, as a model without alignment modules has them, beside the aligned ones; with neither
            DAM nor TAM on, the two pairs would be the same, and it reads `"concat"`'s.
        id2label (`dict[int, str]`, *optional*):
            Class names; defaults to angry, happy, sad, neutral.
    """

    model_type = "mgcma"
    sub_configs_defaults = {
        "speech_config": SubConfigSpec(config_class=AutoConfig, model_type="wav2vec2"),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="bert"),
    }

    speech_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    hidden_size: int = 768
    num_attention_heads: int = 12
    num_alignment_layers: int = 6
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_dropout_prob: float = 0.0
    classifier_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    alignment_norm: str = "post"
    initializer_range: float = 0.02
    temperature: float = 0.07
    similarity_scale: float = 0.005
    similarity_shift: float = 4.0
    learnable_similarity: bool = False
    distribution_distance: str = "sum"
    distribution_loss_weight: float = 1.0
    instance_loss_weight: float = 1.0
    classification_loss_weight: float = 1.0
    calibration_temperature: float | None = None
    use_distribution_alignment: bool = True
    use_token_alignment: bool = True
    use_instance_alignment: bool = True
    module_order: list[str] | tuple[str, ...] = PAPER_MODULE_ORDER
    distribution_pooling: str = "mean"
    sigma_activation: str = "exp"
    log_sigma_clamp: float = 10.0
    dam_output: str = "mu"
    pooling: str = "mean"
    normalize_instance_embeddings: bool = True
    share_cross_attention: bool = False
    classifier_features: str = "concat"

    def __post_init__(self, **kwargs):
        # config.json files written before these became training arguments: read, reported, not kept
        ignored = {name: kwargs.pop(name) for name in TRAINING_SETTINGS if name in kwargs}
        if ignored:
            logger.warning(
                f"MGCMAConfig: ignoring {ignored}: {', '.join(f'`{name}`' for name in ignored)} "
                f"{'is a training argument' if len(ignored) == 1 else 'are training arguments'} now "
                "(`modeling_mgcma.training.trainer.MGCMATrainingArguments`, run_mgcma.py "
                f"{' '.join(f'--{name}' for name in ignored)}), not part of the model."
            )
        if self.id2label is None and "num_labels" not in kwargs:
            self.id2label = dict(enumerate(DEFAULT_EMOTION_LABELS))
        if self.id2label is not None and self.label2id is None:
            self.label2id = {name: int(idx) for idx, name in self.id2label.items()}
        super().__post_init__(**kwargs)
        self.module_order = list(self.module_order)
        self._validate_mgcma()

    def _validate_mgcma(self):
        for name in BOOLEAN_FIELDS:  # a "false" string or a 0 from a hand-edited file would be taken as a choice
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"`{name}` must be true or false, got {value!r}.")
        for name in ("hidden_size", "num_attention_heads", "num_alignment_layers", "intermediate_size"):
            value = getattr(self, name)
            minimum = 0 if name == "num_alignment_layers" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                kind = "a non-negative" if minimum == 0 else "a positive"
                raise ValueError(f"`{name}` must be {kind} integer, got {value!r}.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads})."
            )
        for name in ("hidden_dropout_prob", "attention_dropout_prob", "classifier_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"`{name}` must be a probability in [0, 1), got {value!r}.")
        _check_positive("temperature", self.temperature)
        _check_positive("similarity_scale", self.similarity_scale)
        _check_positive("log_sigma_clamp", self.log_sigma_clamp)
        for name in ("distribution_loss_weight", "instance_loss_weight", "classification_loss_weight"):
            _check_positive(name, getattr(self, name), allow_zero=True)
        order = self.module_order
        if sorted(order) != sorted(ALIGNMENT_MODULES):
            raise ValueError(
                f"`module_order` must be a permutation of {list(ALIGNMENT_MODULES)} (e.g. {list(PAPER_MODULE_ORDER)}), "
                f"got {order!r}."
            )
        _check_choice("distribution_distance", self.distribution_distance, DISTRIBUTION_DISTANCES)
        _check_choice("distribution_pooling", self.distribution_pooling, DISTRIBUTION_POOLING_MODES)
        _check_choice("sigma_activation", self.sigma_activation, SIGMA_ACTIVATIONS)
        _check_choice("dam_output", self.dam_output, DAM_OUTPUTS)
        _check_choice("pooling", self.pooling, POOLING_MODES)
        _check_choice("alignment_norm", self.alignment_norm, ALIGNMENT_NORMS)
        _check_choice("classifier_features", self.classifier_features, CLASSIFIER_FEATURES)
        if self.use_token_alignment and self.num_alignment_layers < 1:
            raise ValueError("`num_alignment_layers` must be >= 1 when `use_token_alignment=True`.")
        if self.num_labels is None or self.num_labels < 1:
            raise ValueError(f"`num_labels` must be >= 1, got {self.num_labels!r}.")
        for key in ("speech_config", "text_config"):
            sub = getattr(self, key)
            if getattr(sub, "hidden_size", None) is None:
                raise ValueError(f"`{key}` ({type(sub).__name__}) has no `hidden_size`: it is not an encoder config.")

    @staticmethod
    def ablation_kwargs(name: str) -> dict:
        """Config arguments of the paper's ablation `name` (S0-S9, Tables II and III)."""
        if name not in PAPER_ABLATIONS:
            raise ValueError(f"unknown ablation {name!r}; expected one of {sorted(PAPER_ABLATIONS)}.")
        return {key: list(value) if isinstance(value, list) else value for key, value in PAPER_ABLATIONS[name].items()}

    @property
    def enabled_modules(self):
        """The alignment modules that are switched on, in pipeline order."""
        enabled = {
            "dam": self.use_distribution_alignment,
            "tam": self.use_token_alignment,
            "iam": self.use_instance_alignment,
        }
        return [name for name in self.module_order if enabled[name]]

    @property
    def classifier_reads_projected(self) -> bool:
        """Whether the classifier also reads the pooled projected encoder outputs (`classifier_features=
        "concat_projected"` with DAM or TAM on; without them the projected features are the aligned ones)."""
        return self.classifier_features == "concat_projected" and (
            self.use_distribution_alignment or self.use_token_alignment
        )


# MGCMA's own true/false settings, each checked to be a bool (the annotations of the fields declared above).
BOOLEAN_FIELDS = tuple(name for name, kind in MGCMAConfig.__annotations__.items() if kind is bool)


__all__ = ["MGCMAConfig", "DEFAULT_EMOTION_LABELS", "ALIGNMENT_MODULES", "PAPER_MODULE_ORDER", "PAPER_ABLATIONS"]
