# Copyright 2026 The MGCMA contributors. Licensed under the Apache License, Version 2.0.
"""benchmarks/bench_learning.py and learning_results.py: the gradient probe, the learning table's records (one row
per run in one results file: resuming, run sets, merging, concurrent appends) and criterion, corpora of other sizes, a
pretrained text encoder, the stage probes, and the key comparison (S0 vs S4) trained on the demo corpus."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from modeling_mgcma import MGCMAForEmotionClassification


ROOT = Path(__file__).resolve().parents[2]

def _flat_gradient(loss, params):
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])


@pytest.mark.parametrize("project", [False, True])
def test_learning_benchmark_gradient_probe_records_cosines(
    tiny_config_factory, tiny_batch, one_torch_thread, monkeypatch, project
):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import bench_learning

    torch.manual_seed(0)
    model = MGCMAForEmotionClassification(tiny_config_factory()).train()
    shared = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("classifier.")]
    out = model(**tiny_batch)
    probe = bench_learning._term_gradient_norms(model, out, shared, balance=1.0, projection=project)
    g_ce, g_align = _flat_gradient(out.loss_ce, shared), _flat_gradient(out.loss_da + out.loss_ia, shared)
    cos = float(g_ce @ g_align / (g_ce.norm() * g_align.norm()))
    assert probe["cos"] == pytest.approx(cos, abs=1e-4) and cos < 0  # (the tiny model starts with a conflict)
    names = [n for n, p in model.named_parameters() if p.requires_grad and not n.startswith("classifier.")]
    text = [i for i, n in enumerate(names) if "text_encoder." in n]
    pick = lambda loss: torch.cat([g.flatten() for i, g in enumerate(torch.autograd.grad(  # noqa: E731
        loss, [shared[i] for i in text], retain_graph=True, allow_unused=True)) if g is not None])
    a, b = pick(out.loss_ce), pick(out.loss_da + out.loss_ia)
    assert probe["cos_text"] == pytest.approx(float(a @ b / (a.norm() * b.norm())), abs=1e-4)
    assert "cos_speech" in probe
    kept = g_align - (g_align @ g_ce) / (g_ce @ g_ce) * g_ce if project else g_align
    assert probe["c"] == pytest.approx(min(1.0, float(g_ce.norm() / kept.norm())), rel=1e-3)


# ---------------------------------------------------------------------------------------------------------------------
# The key comparison, trained
# ---------------------------------------------------------------------------------------------------------------------

def test_learning_table_resumes_and_applies_the_criterion(tmp_path, monkeypatch, capsys):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_learning
    import learning_results

    scores = {"S0": [0.70, 0.72, 0.74], "S4": [0.80, 0.78, 0.76], "concat": [0.74, 0.75, 0.76]}
    calls = []

    def fake_run(setting, recipe_name, corpus, seed, workdir, corpus_seed=None, **_):
        calls.append((setting, corpus, seed, corpus_seed))
        return {"test_ua": scores[setting][seed], "val_ua": 0.5, "seconds": 1.0,
                "curves": [{"epoch": 1, "val_ua": 0.25, "loss_ce": 1.3}, {"epoch": 2, "val_ua": 0.5, "loss_ce": 1.1}],
                "recipe_values": bench_learning.recipe_values(recipe_name)}  # fmt: skip

    monkeypatch.setattr(bench_learning, "run_one", fake_run)
    results = tmp_path / "learning.csv"
    argv = ["table", "--results", str(results), "--recipes", "plain", "--corpora", "demo", "--corpus_offset", "demo=100"]
    bench_learning.main([*argv, "--settings", "S0", "S4", "--seeds", "0", "1"])
    assert calls == [("S0", "demo", 0, 100), ("S4", "demo", 0, 100), ("S0", "demo", 1, 101), ("S4", "demo", 1, 101)]
    calls.clear()
    bench_learning.main([*argv, "--settings", "S0", "S4", "concat", "--seeds", "0", "1", "2"])  # only the new runs
    assert calls == [("concat", "demo", 0, 100), ("concat", "demo", 1, 101), ("S0", "demo", 2, 102),
                     ("S4", "demo", 2, 102), ("concat", "demo", 2, 102)]  # fmt: skip
    row = bench_learning.load_results(results)[("plain", "demo", 100, 0)]
    assert row["S0"] == {0: 0.70, 1: 0.72, 2: 0.74}
    # one row per run, every field typed back; the curves beside them, one row per epoch
    runs = learning_results.read_rows(results)
    assert len(runs) == 9 and runs[0]["run_set"] == "learning" and runs[0]["test_per_class"] is None
    assert runs[0]["recipe_values"] == bench_learning.recipe_values("plain") and runs[0]["seconds"] == 1.0
    curves = learning_results.read_rows(learning_results.curves_path(results), learning_results.CURVE_FIELDS)
    assert len(curves) == 18 and curves[1]["epoch"] == 2 and curves[1]["loss_ce"] == 1.1 and curves[1]["loss_da"] is None
    # S0 0.72 < S4 0.78 - 0.02; S0 0.72 >= 0.9 x 0.75
    assert bench_learning.criterion(row) == {"S4": {"pass": False, "n": 3}, "concat": {"pass": True, "n": 3}}
    row["S4"] = {0: 0.80, 1: 0.70, 2: 0.60}  # a wider spread: 0.72 >= 0.70 - 0.10
    assert bench_learning.criterion(row)["S4"] == {"pass": True, "n": 3}
    assert bench_learning.criterion({"S0": {0: 0.7}})["S4"] is None
    printed = capsys.readouterr().out
    assert "| plain | demo (+100) | 0.720 ± 0.020 (n=3: 0.700, 0.720, 0.740)" in printed
    # S0 - S4 per seed: -0.10, -0.06, -0.02: mean -0.06, standard error 0.04 / sqrt(3)
    assert learning_results.paired_difference(row | {"S4": {0: 0.80, 1: 0.78, 2: 0.76}}) == pytest.approx((-0.06, 0.04 / 3**0.5, 3))
    assert "| -0.060 ± 0.023 (n=3) |" in printed and learning_results.paired_difference({"S0": {0: 1.0}, "S4": {0: 0.5}}) is None
    # a result trained with another recipe (here: another learning rate) is refused, not reused
    runs[0]["recipe_values"]["train"]["learning_rate"] = 2e-3
    results.unlink()
    learning_results.append_rows(results, runs)
    calls.clear()
    with pytest.raises(SystemExit, match="'setting': 'S0', 'seed': 0\\} was trained with"):
        bench_learning.main([*argv, "--settings", "S0", "--seeds", "0"])
    assert calls == []
    # another run set: its own runs, never reused for or pooled with the default set's
    bench_learning.main([*argv, "--settings", "S0", "--seeds", "0", "--run_set", "variant"])
    assert calls == [("S0", "demo", 0, 100)]
    assert bench_learning.load_results(results, "variant") == {("plain", "demo", 100, 0): {"S0": {0: 0.70}}}
    assert learning_results.run_sets(results) == {"learning": 9, "variant": 1}
    capsys.readouterr()
    learning_results.summary(results, "learning", s0_from="variant")  # S0 of another run set beside these S4, concat
    printed = capsys.readouterr().out
    assert "S0 from the run set 'variant'" in printed and "| 0.700 ± 0.000 (n=1: 0.700) | 0.780 ± 0.020" in printed
    with pytest.raises(SystemExit, match="no runs of the run set 'other'.*\\['learning', 'variant'\\]"):
        learning_results.summary(results, "other")
    # a larger test session: its own rows and its own table row, never pooled with the corpus's own test session
    calls.clear()
    capsys.readouterr()
    bench_learning.main([*argv, "--settings", "S0", "--seeds", "1", "--test_per_class", "40"])
    assert calls == [("S0", "demo", 1, 101)]
    assert learning_results.find_run(results, ("learning", "plain", "demo", 101, 40, "S0", 1))["test_ua"] == 0.72
    assert bench_learning.load_results(results)[("plain", "demo", 100, 40)] == {"S0": {1: 0.72}}
    out = capsys.readouterr().out
    assert "| plain | demo (+100, test session 40 per class) | 0.720 ± 0.000 (n=1: 0.720)" in out
    assert "| plain | demo (+100) | 0.720 ± 0.020 (n=3:" in out


def test_learning_results_merge_adds_new_runs_and_refuses_conflicts(tmp_path):
    """learning_results merge: the runs (and curves) another results file has and this one lacks are appended; a
    run recorded in both with the same values is skipped, with other values refused before anything is written."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import learning_results

    def run(seed, test_ua):
        return {"run_set": "farm", "recipe": "plain", "corpus": "spoken", "corpus_seed": seed, "test_per_class": 80,
                "setting": "S0", "seed": seed, "test_ua": test_ua, "val_ua": 0.5, "seconds": 2.0,
                "recipe_values": {"train": {"learning_rate": 1e-3}, "config": {}}}  # fmt: skip

    ours, theirs = tmp_path / "ours.csv", tmp_path / "farm" / "learning.csv"
    learning_results.record_run(ours, run(20, 0.6), [{"epoch": 1, "val_ua": 0.3}])
    learning_results.record_run(theirs, run(20, 0.6), [{"epoch": 1, "val_ua": 0.3}])
    learning_results.record_run(theirs, run(21, 0.7), [{"epoch": 1, "val_ua": 0.4}, {"epoch": 2, "val_ua": 0.5}])
    assert learning_results.merge(theirs, ours) == 1
    assert [r["seed"] for r in learning_results.read_rows(ours)] == [20, 21]
    curves = learning_results.read_rows(learning_results.curves_path(ours), learning_results.CURVE_FIELDS)
    assert [(c["seed"], c["epoch"]) for c in curves] == [(20, 1), (21, 1), (21, 2)]
    assert learning_results.merge(theirs, ours) == 0  # nothing new
    conflicting = tmp_path / "conflict.csv"
    learning_results.record_run(conflicting, run(22, 0.1), [])
    learning_results.record_run(conflicting, run(21, 0.9), [])
    with pytest.raises(SystemExit, match="recorded in .* with other values"):
        learning_results.merge(conflicting, ours)
    assert len(learning_results.read_rows(ours)) == 2


def test_learning_results_concurrent_appends_leave_whole_rows(tmp_path):
    """Runs recording at once (learning_farm.py) append under a lock, one run's rows in one write: every row reads
    back whole, whatever the interleaving."""
    import subprocess

    results = tmp_path / "learning.csv"
    script = f"""
import sys; sys.path.insert(0, {str(ROOT / "benchmarks")!r})
import learning_results
seed = int(sys.argv[1])
for repeat in range(20):
    learning_results.record_run({str(results)!r}, {{"run_set": "x" * 3000, "recipe": "plain", "corpus": "demo",
        "corpus_seed": seed, "test_per_class": None, "setting": "S0", "seed": 100 * seed + repeat, "test_ua": 0.5,
        "val_ua": 0.5, "seconds": 1.0, "recipe_values": {{"train": {{}}, "config": {{}}}}}},
        [{{"epoch": e, "val_ua": 0.25}} for e in range(1, 31)])
"""
    workers = [subprocess.Popen([sys.executable, "-c", script, str(seed)]) for seed in range(4)]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0, 0, 0]
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import learning_results

    rows = learning_results.read_rows(results)
    assert sorted(r["seed"] for r in rows) == sorted(100 * s + r for s in range(4) for r in range(20))
    assert all(r["run_set"] == "x" * 3000 for r in rows)
    curves = learning_results.read_rows(learning_results.curves_path(results), learning_results.CURVE_FIELDS)
    assert len(curves) == 80 * 30 and results.read_text().count("\n") == 81  # one header


def test_learning_runs_take_a_pretrained_text_encoder(tmp_path, tiny_processor, monkeypatch, one_torch_thread):
    """bench_learning --text_model: every setting's text encoder is the folder's model, the run records it (and the
    --train overrides), and a table cell recorded without them is refused rather than reused."""
    from transformers import BertConfig, BertModel

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_learning

    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=len(tiny_processor.tokenizer), hidden_size=32, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=64), add_pooling_layer=False)  # fmt: skip
    folder = tmp_path / "tiny-bert"
    bert.save_pretrained(folder)
    tiny_processor.tokenizer.save_pretrained(folder)
    config = bench_learning.recipe("plain")["config"]
    for setting in ("S0", "S4", "concat"):
        model = bench_learning.build(setting, 5, config, 0, text_model=str(folder))
        encoder = model.text_encoder if setting == "concat" else model.mgcma.text_encoder
        for key, value in bert.state_dict().items():
            assert torch.equal(encoder.state_dict()[key], value), (setting, key)

    # a rate for the text encoder only (as for a pretrained text encoder beside a speech encoder from scratch)
    train = {**bench_learning.recipe("plain")["train"], "text_encoder_learning_rate": 1e-4}
    for setting in ("S0", "concat"):
        model = bench_learning.build(setting, 5, config, 0, text_model=str(folder))
        optimizer, _ = bench_learning.make_optimizer(model, train, steps=10)
        encoder = {id(p) for p in (model.text_encoder if setting == "concat" else model.mgcma.text_encoder).parameters()}
        rates = {id(p): g["initial_lr"] for g in optimizer.param_groups for p in g["params"]}
        assert {r for i, r in rates.items() if i in encoder} == {1e-4}, setting
        assert {r for i, r in rates.items() if i not in encoder} == {train["learning_rate"]}, setting

    calls = []

    def fake_run(setting, recipe_name, corpus, seed, workdir, train_overrides=None, text_model=None, **_):
        calls.append((setting, train_overrides, text_model))
        return {"test_ua": 0.5, "val_ua": 0.5, "seconds": 1.0, "curves": [],
                "recipe_values": bench_learning.recipe_values(recipe_name, None, train_overrides, text_model)}

    monkeypatch.setattr(bench_learning, "run_one", fake_run)
    results = tmp_path / "results" / "learning.csv"
    argv = ["table", "--results", str(results), "--recipes", "plain", "--corpora", "spoken",
            "--settings", "S0", "--seeds", "3"]  # fmt: skip
    bench_learning.main([*argv, "--text_model", str(folder), "--train", '{"learning_rate": 1e-4}'])
    assert calls == [("S0", {"learning_rate": 1e-4}, str(folder))]
    record = bench_learning.learning_results.find_run(results, ("learning", "plain", "spoken", 3, None, "S0", 3))
    assert record["recipe_values"]["text_model"] == "tiny-bert"
    assert record["recipe_values"]["train"]["learning_rate"] == 1e-4
    with pytest.raises(SystemExit, match="was trained with"):
        bench_learning.main(argv)
    assert len(calls) == 1


def test_a_larger_test_session_leaves_the_training_sessions_unchanged(tmp_path):
    """bench_learning --test_per_class: sessions 1-4 (training and validation) are byte-identical, session 5 larger."""
    import hashlib

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_learning

    def digests(root, session):
        return {str(f.relative_to(root / f"Session{session}")): hashlib.md5(f.read_bytes()).hexdigest()
                for f in sorted((root / f"Session{session}").rglob("*")) if f.is_file()}  # fmt: skip

    own = bench_learning.make_corpus("demo", 3, tmp_path, utterances_per_session=8)
    larger = bench_learning.make_corpus("demo", 3, tmp_path, utterances_per_session=8, test_per_class=5)
    assert own != larger
    for session in (1, 2, 3, 4):
        assert digests(own, session) == digests(larger, session) != {}
    wavs = [len(list((root / "Session5").rglob("*.wav"))) for root in (own, larger)]
    assert wavs[1] - wavs[0] == 4 * (5 - 2)  # 2 -> 5 utterances of each of the four classes


def test_corpora_of_another_size_are_cached_apart_and_taken_by_curves_only(tmp_path, monkeypatch, capsys):
    """bench_learning --utterances_per_session: its own corpus folder (never the 80-utterance corpus' cache), passed on
    by `curves`, refused by the commands that record or read the table's runs."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_learning

    import modeling_mgcma.data as data

    made = []
    monkeypatch.setattr(data, "generate_demo_corpus", lambda root, **kwargs: made.append((Path(root).name, kwargs)) or root)
    bench_learning.make_corpus("spoken", 4, tmp_path)
    with pytest.raises(ValueError, match="unknown corpus 'speech'; expected one of \\['demo', 'spoken', 'spoken-h3'"):
        bench_learning.make_corpus("speech", 4, tmp_path)
    bench_learning.make_corpus("spoken", 4, tmp_path, utterances_per_session=160)
    bench_learning.make_corpus("spoken", 4, tmp_path, utterances_per_session=160, test_per_class=80)
    assert [name for name, _ in made] == ["spoken-4", "spoken-4-u160", "spoken-4-u160-test80"]
    assert made[1][1]["utterances_per_session"] == 160
    assert made[2][1]["counts"][1] == dict.fromkeys(made[2][1]["counts"][1], 40)
    assert made[2][1]["counts"][5] == dict.fromkeys(made[2][1]["counts"][5], 80)

    runs = []

    def fake_run(setting, recipe_name, corpus, seed, workdir, *_, utterances_per_session=80, **__):
        runs.append((setting, corpus, seed, utterances_per_session))
        return {"test_ua": 0.5, "val_ua": 0.5}

    monkeypatch.setattr(bench_learning, "run_one", fake_run)
    bench_learning.main(["curves", "--setting", "S4", "--corpora", "spoken", "--seeds", "2", "--utterances_per_session", "160"])
    bench_learning.main(["curves", "--setting", "S4", "--corpora", "spoken", "--seeds", "2"])
    assert runs == [("S4", "spoken", 2, 160), ("S4", "spoken", 2, 80)]
    for command in ("table", "summary", "probes"):
        with pytest.raises(SystemExit):
            bench_learning.main([command, "--results", str(tmp_path / "learning.csv"), "--utterances_per_session", "160"])
        assert "taken by `curves` only" in capsys.readouterr().err
    assert len(runs) == 2


LEARNING_EPOCHS = 8
LEARNING_MARGIN = 0.1


def held_out_ua(setting, config, corpus_root, processor, seed=0):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_learning

    fold = bench_learning.load_fold(corpus_root, processor, split_seed=seed)
    model = bench_learning.build(setting, len(processor.tokenizer), config, seed)
    train = {**bench_learning.recipe("plain")["train"], "num_train_epochs": LEARNING_EPOCHS}
    return bench_learning.train_and_test(model, fold, processor, train, seed)


@pytest.mark.slow
def test_full_model_learns_at_least_as_well_as_without_alignment(tmp_path, one_torch_thread):
    """S0 (DAM + TAM + IAM) vs S4 (no alignment), the defaults for new data, lr 1e-3, batch 8, a few epochs, on the
    demo corpus (held-out session 5, model selected on validation). With the paper's plain weighted sum of the
    losses, S0 is still near chance at this point while S4 has learned the classes."""
    from modeling_mgcma.data import demo_vocabulary, generate_demo_corpus
    from modeling_mgcma.experiments.run_arguments import load_preset
    from modeling_mgcma.training.from_scratch import word_processor

    root = generate_demo_corpus(tmp_path / "demo", seed=7, utterances_per_session=60)
    processor = word_processor(demo_vocabulary())
    config = load_preset(None)[1]
    full = held_out_ua("S0", config, root, processor)
    none = held_out_ua("S4", config, root, processor)
    assert full["test_ua"] >= none["test_ua"] - LEARNING_MARGIN, (full, none)
    assert none["test_ua"] > 0.6  # the comparison means something only if the baseline learned
    # the alignment losses are still trained, not switched off: L_IA well below its chance level ln(8)
    assert full["curves"][-1]["loss_ia"] < 0.75 * np.log(8)


def test_stage_probes_read_every_stage_and_score_separable_features(one_torch_thread):
    """bench_learning probes: pooled features at every stage (projected, DAM, each TAM block) for every row, and a
    linear probe that scores features carrying the label perfectly and label-free noise near chance."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_learning

    from modeling_mgcma.data import demo_vocabulary
    from modeling_mgcma.training.from_scratch import word_processor

    processor = word_processor(demo_vocabulary(), max_duration=5.0)
    rng = np.random.default_rng(0)
    words = demo_vocabulary()
    rows = [{"audio": rng.standard_normal(8000 + 400 * i).astype(np.float32), "rate": 16000, "label": i % 4,
             "text": " ".join(words[(i + k) % len(words)] for k in range(3 + i % 4))} for i in range(10)]  # fmt: skip
    model = bench_learning.build("S0", len(processor.tokenizer), {}, seed=0)
    found = bench_learning.stage_features(model, rows, processor)
    stages = 1 + 1 + model.config.num_alignment_layers  # projected, DAM, each TAM block
    assert len(found["speech"]) == len(found["text"]) == stages
    assert all(a.shape == (10, model.config.hidden_size) for a in found["speech"] + found["text"])
    assert found["labels"].tolist() == [i % 4 for i in range(10)]
    tam_first = bench_learning.build("S8", len(processor.tokenizer), {}, seed=0)  # TAM -> DAM -> IAM
    assert len(bench_learning.stage_features(tam_first, rows[:4], processor)["text"]) == stages
    labels = np.arange(200) % 4
    separable = np.eye(4)[labels] + 0.1 * rng.standard_normal((200, 4))
    assert bench_learning.linear_probe_ua(separable[:100], labels[:100], separable[100:], labels[100:]) == 1.0
    noise = rng.standard_normal((200, 4))
    assert bench_learning.linear_probe_ua(noise[:100], labels[:100], noise[100:], labels[100:]) < 0.5


def test_family_members_build_their_encoders_and_read_their_cues(one_torch_thread, tmp_path):
    """learning_families: every member's encoder architectures build and run a forward pass (frame rate and depth as
    named), members are tuning or held-out, and the cue subsets find prosody-only and keyword utterances."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_learning
    import learning_families

    from modeling_mgcma.training.from_scratch import word_processor

    assert {spec["role"] for spec in learning_families.MEMBERS.values()} == {"tuning", "held-out"}
    frames = {}
    for name, spec in learning_families.MEMBERS.items():
        speech, text = bench_learning.encoder_configs(50, corpus=name)
        frames[spec["speech_encoder"]] = int(np.prod(speech.conv_stride))
        assert len(speech.conv_dim) == len(speech.conv_kernel) == len(speech.conv_stride)
        overrides = learning_families.TEXT_ENCODERS[spec["text_encoder"]]
        assert text.num_hidden_layers == overrides.get("num_hidden_layers", bench_learning.LAYERS)
    assert frames == {"demo": 320, "base-like": 320, "fine-frames": 160, "fast-frames": 80, "coarse-deep": 640}
    name = "spoken-h3"  # post-LN, group norm, 3 ReLU layers, another vocabulary
    processor = word_processor(bench_learning.corpus_vocabulary(name), max_duration=3.0)
    fillers, keywords = learning_families.corpus_style(name).words
    rows = [{"audio": np.random.default_rng(i).standard_normal(12000).astype(np.float32), "rate": 16000, "label": label,
             "text": f"{fillers[i]} {keywords[cls][0] if cls else fillers[i + 1]} {fillers[i + 2]}."}
            for i, (label, cls) in enumerate([(0, None), (1, "happy"), (2, "sad"), (3, None), (3, "neutral")])]  # fmt: skip
    model = bench_learning.build("S0", len(processor.tokenizer), {}, seed=0, corpus=name).eval()
    assert not model.config.speech_config.do_stable_layer_norm and model.config.text_config.hidden_act == "relu"
    out = model(**next(bench_learning.batches(rows, processor, 8)))
    assert out.logits.shape == (5, 4) and torch.isfinite(out.loss)
    subsets = bench_learning.cue_subsets(rows, name)  # labels: 0 angry, 1 happy, 2 sad, 3 neutral
    assert subsets["prosody_only"].tolist() == [True, False, False, False, False]
    assert subsets["lexical"].tolist() == [False, True, True, False, False]
    with pytest.raises(KeyError, match="unknown family member"):
        learning_families.member("tones-h9")


def test_speech_encoder_pretraining_writes_a_loadable_encoder(one_torch_thread, tmp_path):
    """pretrain_speech_encoder.py: a few self-supervised steps on the synthetic pretraining corpora leave a
    safetensors Wav2Vec2Model (no pretraining heads, SpecAugment off) that bench_learning can load as --speech_model."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_learning
    import pretrain_speech_encoder

    out = tmp_path / "encoder"
    pretrain_speech_encoder.main([str(out), "--steps", "3", "--batch_size", "4", "--utterances_per_session", "4",
                                  "--workdir", str(tmp_path / "work")])  # fmt: skip
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    record = __import__("json").loads((out / "pretraining.json").read_text())
    assert record["clips"] == 4 * 5 * (4 + 4) and [e["step"] for e in record["curve"]] == [0, 2]
    assert all(np.isfinite(e["loss"]) for e in record["curve"])
    model = bench_learning.build("S4", 60, {}, seed=0, speech_model=str(out))
    assert model.config.speech_config.mask_time_prob == 0.0
    from safetensors.torch import load_file

    saved = load_file(out / "model.safetensors")
    name = "encoder.layers.0.attention.q_proj.weight"
    assert torch.equal(model.mgcma.speech_encoder.state_dict()[name], saved[name])  # the pretrained weights, kept


def test_the_kept_pretrained_speech_encoder_loads_as_speech_model(one_torch_thread):
    """benchmarks/checkpoints/wav2vec2-synthetic (the pretrained regime's speech encoder) is a safetensors
    Wav2Vec2Model with SpecAugment off whose pretraining ended below the contrastive loss's chance value ln 21."""
    import json

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_learning
    from safetensors.torch import load_file

    folder = ROOT / "benchmarks" / "checkpoints" / "wav2vec2-synthetic"
    record = json.loads((folder / "pretraining.json").read_text())
    assert record["curve"][-1]["contrastive"] < np.log(21) - 1.0
    model = bench_learning.build("S0", 60, {}, seed=0, speech_model=str(folder))
    assert model.config.speech_config.mask_time_prob == 0.0
    saved = load_file(folder / "model.safetensors")
    name = "encoder.layers.1.feed_forward.output_dense.weight"
    assert torch.equal(model.mgcma.speech_encoder.state_dict()[name], saved[name])
