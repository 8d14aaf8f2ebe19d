# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""MGCMA: Multi-Granularity Cross-Modal Alignment for speech + text emotion recognition, as a transformers model.

Importing this package registers MGCMA with `AutoConfig`, `AutoModel`, `AutoModelForAudioClassification` and
`AutoProcessor`, and marks the classes so that `save_pretrained` writes `auto_map` and copies the code files: a
saved folder then loads with `trust_remote_code=True` where this package is not installed.
"""

from transformers import AutoConfig, AutoModel, AutoModelForAudioClassification, AutoProcessor
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_mgcma import DEFAULT_EMOTION_LABELS, PAPER_ABLATIONS, MGCMAConfig
from .modeling_mgcma import (
    MGCMAForEmotionClassification,
    MGCMAModel,
    MGCMAModelOutput,
    MGCMAPreTrainedModel,
    distribution_contrastive_loss,
    gaussian_wasserstein_distance,
    instance_contrastive_loss,
)
from .pipeline_mgcma import TASK as PIPELINE_TASK
from .pipeline_mgcma import MultimodalEmotionRecognitionPipeline, add_pipeline_to_folder, save_for_hub
from .processing_mgcma import MGCMAProcessor


__version__ = "0.1.0"

AutoConfig.register(MGCMAConfig.model_type, MGCMAConfig, exist_ok=True)
AutoModel.register(MGCMAConfig, MGCMAModel, exist_ok=True)
# A speech + text emotion classifier: its main input is the waveform and its output one label per utterance, which is
# what AutoModelForAudioClassification stands for (and what the Hub widget of the audio-classification task expects).
AutoModelForAudioClassification.register(MGCMAConfig, MGCMAForEmotionClassification, exist_ok=True)
AutoProcessor.register(MGCMAConfig, MGCMAProcessor, exist_ok=True)

MGCMAConfig.register_for_auto_class()
MGCMAModel.register_for_auto_class("AutoModel")
MGCMAForEmotionClassification.register_for_auto_class("AutoModelForAudioClassification")
MGCMAProcessor.register_for_auto_class("AutoProcessor")

# `pipeline("multimodal-emotion-recognition", model=..., processor=...)` in this process; saved folders carry the task
# in config.json (`custom_pipelines`, written by `save_for_hub` / `add_pipeline_to_folder`) for everyone else.
PIPELINE_REGISTRY.register_pipeline(
    PIPELINE_TASK,
    pipeline_class=MultimodalEmotionRecognitionPipeline,
    pt_model=AutoModelForAudioClassification,
    type="multimodal",
)

# The data layer pulls in `datasets`; load it on first use.
_LAZY_DATA = {
    "load_iemocap",
    "loso_fold",
    "generate_demo_corpus",
    "load_manifest",
    "demo_vocabulary",
    "EXPECTED_4CLASS_COUNTS",
}


def __getattr__(name):
    if name in _LAZY_DATA:
        from . import data

        return getattr(data, name)
    raise AttributeError(f"module 'modeling_mgcma' has no attribute {name!r}")


__all__ = [
    "DEFAULT_EMOTION_LABELS",
    "PAPER_ABLATIONS",
    "MGCMAConfig",
    "MGCMAModel",
    "MGCMAForEmotionClassification",
    "MGCMAModelOutput",
    "MGCMAPreTrainedModel",
    "MGCMAProcessor",
    "MultimodalEmotionRecognitionPipeline",
    "PIPELINE_TASK",
    "add_pipeline_to_folder",
    "save_for_hub",
    "distribution_contrastive_loss",
    "gaussian_wasserstein_distance",
    "instance_contrastive_loss",
    *sorted(_LAZY_DATA),
]
