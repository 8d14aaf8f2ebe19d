# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""The model card: what its metadata names."""


def test_card_base_model_lists_hub_ids_only(tmp_path):
    from modeling_mgcma.configuration_mgcma import MGCMAConfig
    from modeling_mgcma.experiments.model_card import render_model_card

    local = tmp_path / "my_wav2vec2"
    local.mkdir()
    results = {"folds": [{"test_group": 5, "wa": 0.5, "ua": 0.5}], "mean": {"wa": 0.5, "ua": 0.5}, "std": {"wa": 0, "ua": 0}}
    card = render_model_card(results, MGCMAConfig(), model_name="m", data_source="demo", hyperparameters={},
                             base_models=[str(local), "bert-base-uncased"])  # fmt: skip
    assert card.data.base_model == ["bert-base-uncased"] and str(tmp_path) not in str(card)
