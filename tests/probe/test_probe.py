"""Tests of emoscope.probe: probes, scores, persistence, malleability and the probe command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import typer
from typer.testing import CliRunner

from emoscope.activations import Activations, extract_activations, load_model, render_chat
from emoscope.cli.inside import register
from emoscope.datasets.base import Dataset, Example
from emoscope.errors import EmoscopeError
from emoscope.labels import get_taxonomy
from emoscope.llm.base import Generation
from emoscope.probe import (
    LinearProbe,
    MLPProbe,
    classification_scores,
    fit_probe,
    malleability,
    persistence_curve,
    plot_layer_curves,
    prepare_probe_data,
    probe_layers,
    run_probe,
    zero_shot_baseline,
    zero_shot_scored,
)
from emoscope.probe.zero_shot import zero_shot_prompt
from inside_helpers import assert_one_line_error, no_temp_files, run_emoscope


def _clusters(
    n: int, d: int = 24, k: int = 4, sep: float = 3.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * sep
    y = rng.integers(0, k, n)
    x = centres[y] + rng.normal(size=(n, d))
    return x.astype(np.float32), y


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_probe_learns_separable_data_but_not_shuffled_labels(kind: str) -> None:
    x, y = _clusters(600)
    x_tr, y_tr, x_te, y_te = x[:400], y[:400], x[400:], y[400:]
    probe, l2 = fit_probe(x_tr, y_tr, kind, n_classes=4)
    acc, f1 = classification_scores(y_te, probe.predict(x_te))
    assert acc > 0.95 and f1 > 0.95
    assert (l2 is None) == (kind == "mlp")
    shuffled = np.random.default_rng(1).permutation(y_tr)
    probe2, _ = fit_probe(x_tr, shuffled, kind, n_classes=4)
    acc2, _ = classification_scores(y_te, probe2.predict(x_te))
    assert acc2 < 0.45  # chance is 0.25


def test_linear_probe_probabilities_and_errors() -> None:
    x, y = _clusters(200, k=3)
    p = LinearProbe(1e-2, n_classes=3).fit(x, y)
    probs = p.predict_proba(x)
    assert probs.shape == (200, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (probs.argmax(1) == p.predict(x)).all()
    with pytest.raises(EmoscopeError, match="not fitted"):
        LinearProbe().predict(x)
    with pytest.raises(EmoscopeError, match="not fitted"):
        MLPProbe().predict(x)
    with pytest.raises(EmoscopeError, match="unknown probe"):
        fit_probe(x, y, "forest")
    with pytest.raises(EmoscopeError, match="class_weight"):
        LinearProbe(class_weight="heavy").fit(x, y)


def test_balanced_class_weight_helps_minority_class() -> None:
    rng = np.random.default_rng(0)
    y = np.array([0] * 380 + [1] * 20)
    x = rng.normal(size=(400, 8)).astype(np.float32)
    x[:, 0] += 1.2 * y
    plain = LinearProbe(1e-2).fit(x, y)
    balanced = LinearProbe(1e-2, class_weight="balanced").fit(x, y)
    assert balanced.predict(x).sum() > plain.predict(x).sum()


def test_probe_layers_on_planted_layer() -> None:
    x, y = _clusters(400, d=16, k=3)
    noise = np.random.default_rng(5).normal(size=x.shape).astype(np.float32)
    arrays_tr = {0: noise[:300], 1: x[:300]}
    arrays_te = {0: noise[300:], 1: x[300:]}
    tr = Activations((0, 1), "mean", "synthetic", 300, 16, arrays_tr)
    te = Activations((0, 1), "mean", "synthetic", 100, 16, arrays_te)
    curve, probes = probe_layers(tr, y[:300], te, y[300:], n_boot=100)
    by = {s.layer: s for s in curve.scores}
    assert by[1].accuracy > 0.9 and by[0].accuracy < 0.6
    assert curve.best().layer == 1 and set(probes) == {0, 1}
    d = curve.to_dict()
    assert d["best_layer"] == {"accuracy": 1, "macro_f1": 1}
    assert json.loads(json.dumps(d))["scores"][1]["accuracy_ci"][0] <= by[1].accuracy


def test_prepare_probe_data_drops_multilabel_and_subsamples() -> None:
    tax = get_taxonomy("ekman")
    train = Dataset(
        "toy", "train",
        [Example(f"t{i}", ("joy",) if i % 3 else ("anger",)) for i in range(30)]
        + [Example("two", ("joy", "anger")), Example("none", ())],
        taxonomy=tax,
    )  # fmt: skip
    test = Dataset(
        "toy", "test",
        [Example("a", ("joy",)), Example("b", ("anger", "joy")), Example("c", ("fear",))],
        taxonomy=tax,
    )  # fmt: skip
    data = prepare_probe_data(train, test, max_train=12, seed=1)
    assert data.labels == ("anger", "joy")
    assert len(data.train_texts) == 12 and len(data.train_y) == 12
    assert data.test_texts == ["a"] and data.test_y.tolist() == [1]
    assert data.notes["multi_label_dropped"] == {"train": 2, "test": 1}
    assert data.notes["test_unknown_class_dropped"] == 1
    assert data.notes["subsampled"] and data.notes["available"]["train"] == 30
    empty = Dataset("toy", "test", [Example("x", ("joy", "fear"))], taxonomy=tax)
    with pytest.raises(EmoscopeError, match="no single-label"):
        prepare_probe_data(train, empty)


class ScriptedBackend:
    """Answers from a fixed function of the last user message (for scoring tests)."""

    name = "scripted"
    model = "scripted"

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    def generate(
        self, conversations: Any, *, max_new_tokens: int = 64, temperature: float = 0.0
    ) -> list[Generation]:
        self.calls.append({"n": len(conversations), "max_new_tokens": max_new_tokens})
        return [Generation(self.answer(c[-1]["content"])) for c in conversations]


def test_zero_shot_baseline_scores_answers() -> None:
    texts = ["so happy", "so sad", "so angry"]
    gold = [1, 2, 0]
    labels = ["anger", "joy", "sadness"]
    truth = dict(zip(texts, ["Joy", "sadness!", "I think anger"], strict=True))
    backend = ScriptedBackend(lambda msg: next(v for k, v in truth.items() if k in msg))
    res = zero_shot_baseline(backend, texts, gold, labels, batch_size=2, n_boot=50)
    assert res["accuracy"] == 1.0 and res["unparsed"] == 0 and res["n"] == 3
    assert [c["n"] for c in backend.calls] == [2, 1]
    wrong = zero_shot_baseline(ScriptedBackend(lambda _m: "no idea"), texts, gold, labels)
    assert wrong["accuracy"] == 0.0 and wrong["unparsed"] == 3


def test_zero_shot_through_real_hf_backend(llama_dir: Path) -> None:
    from emoscope.llm.hf import HFBackend

    backend = HFBackend(str(llama_dir), device="cpu", batch_size=2)
    res = zero_shot_baseline(backend, ["i am so happy", "sad"], [1, 2], ["anger", "joy", "sadness"])
    assert res["n"] == 2 and 0.0 <= res["accuracy"] <= 1.0
    assert len(res["examples"]) == 2


class ScoringBackend(ScriptedBackend):
    """Scores labels: the true label (named in the text) gets +2, and ``anger`` always +3 (a
    token prior no input overcomes, which contextual calibration must remove)."""

    def __init__(self, labels: list[str]) -> None:
        super().__init__(lambda _m: "")
        self.labels = labels
        self.scored: list[str] = []

    def score(self, conversations: Any, choices: list[str]) -> list[np.ndarray]:
        assert choices == self.labels
        out = []
        for conv in conversations:
            text = conv[-1]["content"].split("Text: ")[1].split("\n")[0]
            self.scored.append(text)
            row = np.array([-5.0 + 3.0 * (c == "anger") + 2.0 * (c in text) for c in choices])
            out.append(row)
        return out


def test_zero_shot_scored_calibrates_on_dev_texts_only() -> None:
    labels = ["anger", "joy", "sadness"]
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 60).tolist()
    texts = [f"this is {labels[g]} number {i}" for i, g in enumerate(gold)]
    dev_gold = rng.integers(0, 3, 30).tolist()
    dev = [f"dev {labels[g]} {i}" for i, g in enumerate(dev_gold)]
    backend = ScoringBackend(labels)
    res = zero_shot_scored(
        backend, texts, gold, labels, dev_texts=dev, dev_gold=dev_gold, batch_size=7, n_boot=50
    )
    # Raw likelihoods always pick the label with the token prior; calibration removes it.
    assert res["raw"]["predicted_counts"] == {"anger": 60, "joy": 0, "sadness": 0}
    assert res["calibrated"]["accuracy"] == 1.0
    assert res["raw"]["accuracy"] == pytest.approx(np.mean(np.asarray(gold) == 0))
    # The prior is the mean dev score of each label, so it is fitted on the dev texts alone.
    dev_share = np.bincount(dev_gold, minlength=3) / len(dev_gold)
    prior = res["calibrated"]["calibration"]["prior"]
    assert prior["anger"] == pytest.approx(-2.0 + 2.0 * dev_share[0])
    assert prior["joy"] == pytest.approx(-5.0 + 2.0 * dev_share[1])
    assert res["calibrated"]["calibration"]["n_fit"] == 30
    assert backend.scored[:30] == dev and backend.scored[30:] == texts
    assert res["n"] == 60 and res["n_dev"] == 30
    lo, hi = res["calibrated"]["accuracy_ci"]
    assert lo <= res["calibrated"]["accuracy"] <= hi


def test_zero_shot_scored_needs_a_scoring_backend_and_dev_texts() -> None:
    with pytest.raises(EmoscopeError, match="scores given answers"):
        zero_shot_scored(
            ScriptedBackend(lambda _m: "joy"), ["a"], [0], ["joy", "anger"],
            dev_texts=["b"], dev_gold=[0],
        )  # fmt: skip
    with pytest.raises(EmoscopeError, match="development texts"):
        zero_shot_scored(ScoringBackend(["joy"]), ["a"], [0], ["joy"], dev_texts=[], dev_gold=[])


def test_zero_shot_scored_through_real_hf_backend(llama_dir: Path) -> None:
    from emoscope.llm.hf import HFBackend

    backend = HFBackend(str(llama_dir), device="cpu", batch_size=2)
    labels = ["anger", "joy", "sadness"]
    res = zero_shot_scored(
        backend, ["i am so happy", "sad", "so angry"], [1, 2, 0], labels,
        dev_texts=["glad", "i am sad", "great"], dev_gold=[1, 2, 1], n_boot=20,
    )  # fmt: skip
    for row in ("raw", "calibrated", "calibrated_label_prior"):
        assert sum(res[row]["predicted_counts"].values()) == 3
        assert 0.0 <= res[row]["accuracy"] <= 1.0 and res[row]["nll"] > 0
    logp = res["examples"][0]["label_logprobs"]
    assert set(logp) == set(labels) and all(v < 0 for v in logp.values())
    # Identical raw scores under the real model give identical calibrated distributions.
    direct = np.stack(
        backend.score([[{"role": "user", "content": zero_shot_prompt("sad", labels)}]], labels)
    )[0]
    assert res["examples"][1]["label_logprobs"]["joy"] == pytest.approx(direct[1], abs=1e-3)


def _trained_last_token_probes(llama: Any, texts: list[str], y: np.ndarray) -> dict[int, Any]:
    acts = extract_activations(llama, texts, layers=[1, 3], pooling="last")
    return {lay: LinearProbe(1e-2, n_classes=2).fit(acts[lay], y) for lay in (1, 3)}


TEXTS = [
    "i am so happy", "i love it , wonderful", "great fun today", "so glad and happy",
    "i am so sad", "i miss you , i cry", "terrible , lost and alone", "so sorry and sad",
]  # fmt: skip
Y = np.array([0, 0, 0, 0, 1, 1, 1, 1])


def test_persistence_offset_zero_is_the_texts_own_last_token(llama: Any) -> None:
    probes = _trained_last_token_probes(llama, TEXTS, Y)
    res = persistence_curve(llama, probes, TEXTS, Y.tolist(), offsets=[0, 3, 1])
    assert res["offsets"] == [0, 1, 3] and res["n"] == 8
    acts = extract_activations(llama, TEXTS, layers=[1, 3], pooling="last")
    for lay in (1, 3):
        direct = float((probes[lay].predict(acts[lay]) == Y).mean())
        rows = res["layers"][str(lay)]
        assert rows[0]["offset"] == 0
        assert rows[0]["accuracy"] == pytest.approx(direct)
        assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    with pytest.raises(EmoscopeError, match="non-negative"):
        persistence_curve(llama, probes, TEXTS, Y.tolist(), offsets=[-1])
    # Chat-format probes read the state at the end of the rendered user turn at offset 0.
    rendered = [render_chat(llama.tokenizer, [{"role": "user", "content": t}]) for t in TEXTS]
    chat_acts = extract_activations(
        llama, rendered, layers=[1, 3], pooling="last", add_special_tokens=False
    )
    chat_probes = {lay: LinearProbe(1e-2, n_classes=2).fit(chat_acts[lay], Y) for lay in (1, 3)}
    chat = persistence_curve(llama, chat_probes, TEXTS, Y.tolist(), offsets=[0], chat_format=True)
    direct = float((chat_probes[3].predict(chat_acts[3]) == Y).mean())
    assert chat["layers"]["3"][0]["accuracy"] == pytest.approx(direct) and chat["chat_format"]


def test_persistence_needs_a_causal_model(tiny_base_model: Path) -> None:
    bert = load_model(str(tiny_base_model))
    with pytest.raises(EmoscopeError, match="decoder"):
        persistence_curve(bert, {}, ["a"], [0])


def test_malleability_reports_shift_from_no_system_prompt(llama: Any) -> None:
    probes = _trained_last_token_probes(llama, TEXTS, Y)
    res = malleability(
        llama, probes, ["joy", "sadness"], TEXTS, Y.tolist(),
        {"cheerful": "you are so happy and glad", "gloomy": "you are sad and alone"},
    )  # fmt: skip
    none = res["conditions"]["none"]["layers"]["3"]
    assert none["changed_vs_none"] == 0.0
    assert all(abs(v) < 1e-9 for v in none["shift_from_none"].values())
    cheer = res["conditions"]["cheerful"]["layers"]["3"]
    assert sum(cheer["mean_probs"].values()) == pytest.approx(1.0)
    assert any(abs(v) > 1e-6 for v in cheer["shift_from_none"].values())
    assert res["conditions"]["gloomy"]["system_prompt"] == "you are sad and alone"


def test_run_probe_on_tiny_bert_with_control(tiny_base_model: Path, mini_data_root: Path) -> None:
    run = run_probe(
        str(tiny_base_model), "goemotions", taxonomy="ekman", layers="0,2,4", max_train=60,
        max_test=25, data_root=mini_data_root, n_boot=50, batch_size=16,
    )  # fmt: skip
    rep = run.report
    assert rep["model_kind"] == "encoder" and rep["pooling"] == "mean"
    assert rep["layers"] == [0, 2, 4] and set(run.probes) == {0, 2, 4}
    assert set(rep["curves"]) == {"model", "control"}
    assert rep["curves"]["control"]["random_init"] is True
    assert rep["data"]["used"]["train"] <= 60 and rep["data"]["single_label_only"]
    assert len(rep["curves"]["model"]["scores"]) == 3
    json.dumps(rep)


def test_plot_layer_curves(tmp_path: Path) -> None:
    curve = {
        "scores": [
            {"layer": i, "accuracy": 0.5 + i / 10, "accuracy_ci": [0.4, 0.7],
             "macro_f1": 0.3, "macro_f1_ci": [0.2, 0.4]}
            for i in range(3)
        ]
    }  # fmt: skip
    out = plot_layer_curves(
        [("a", [("model", curve)]), ("b", [("model", curve), ("control", curve)])],
        tmp_path / "fig" / "c.png",
        baselines=[{"majority": {"accuracy": 0.4, "macro_f1": 0.1}}],
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_probe_command_end_to_end(llama_dir: Path, mini_data_root: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    out = tmp_path / "run"
    res = CliRunner().invoke(
        app,
        [
            "probe", "--model", str(llama_dir), "--dataset", "goemotions", "--taxonomy", "ekman",
            "--layers", "all", "--out", str(out), "--max-train", "60", "--max-test", "20",
            "--n-boot", "50", "--data-root", str(mini_data_root), "--persistence", "0,2,4",
            "--system-prompt", "cheerful=you are happy", "--zero-shot-backend", "hf",
            "--zero-shot-limit", "4", "--analysis-n", "6", "--stream",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "probe.json").read_text())
    assert rep["layers"] == [0, 1, 2, 3, 4] and rep["model_kind"] == "decoder"
    assert rep["chat_format"] is True  # system prompts need chat-formatted probes
    assert rep["zero_shot"]["n"] == 4
    assert rep["persistence"]["offsets"] == [0, 2, 4]
    assert "cheerful" in rep["malleability"]["conditions"]
    assert (out / "layer_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "activations" / "control" / "test" / "meta.json").is_file()
    assert "accuracy [95% CI]" in res.output and "control acc" in res.output


def test_probe_command_bad_input(tmp_path: Path, mini_data_root: Path) -> None:
    app = typer.Typer()
    register(app)
    res = CliRunner().invoke(
        app,
        ["probe", "--out", str(tmp_path), "--system-prompt", "oops", "--data-root",
         str(mini_data_root)],
    )  # fmt: skip
    assert res.exit_code != 0
    assert isinstance(res.exception, EmoscopeError) and "NAME=TEXT" in str(res.exception)


def test_emoscope_probe_entry_point(
    llama_dir: Path, mini_data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    common = ["--data-root", str(mini_data_root), "--max-train", "40", "--max-test", "12",
              "--n-boot", "20"]  # fmt: skip
    code, stdout, _err = run_emoscope(
        ["probe", "--model", str(llama_dir), "--taxonomy", "ekman", "--layers", "1,4",
         "--out", str(out), *common],
        capsys,
    )  # fmt: skip
    assert code == 0
    rep = json.loads((out / "probe.json").read_text())
    assert rep["layers"] == [1, 4] and set(rep["curves"]) == {"model", "control"}
    assert rep["curves"]["control"]["random_init"] and not rep["curves"]["model"]["random_init"]
    assert rep["curves"]["control"]["scores"] != rep["curves"]["model"]["scores"]
    assert (out / "layer_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert no_temp_files(out) and "control acc" in stdout
    bad_layer = ["probe", "--model", str(llama_dir), "--layers", "9", "--out", str(tmp_path / "x")]
    assert_one_line_error(run_emoscope([*bad_layer, *common], capsys), "layer 9 is out of range")
    assert not (tmp_path / "x" / "probe.json").exists()
    assert_one_line_error(
        run_emoscope(["probe", "--dataset", "nosuch", "--out", str(tmp_path / "y")], capsys),
        "nosuch",
    )
    assert_one_line_error(
        run_emoscope(["probe", "--probe", "svm", "--model", str(llama_dir), "--out",
                      str(tmp_path / "z"), *common], capsys),
        "unknown probe",
    )  # fmt: skip


def test_run_probe_reads_activations_under_bf16_autocast(
    tiny_base_model: Path, mini_data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import emoscope.activations as activations

    seen: list[bool] = []
    real = activations.extract_activations

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(torch.is_autocast_enabled("cpu"))
        return real(*args, **kwargs)

    monkeypatch.setattr(activations, "extract_activations", spy)
    kw: dict[str, Any] = {
        "taxonomy": "ekman", "layers": "2", "max_train": 40, "max_test": 20, "control": False,
        "data_root": mini_data_root, "n_boot": 20, "batch_size": 16,
    }  # fmt: skip
    fp32 = run_probe(str(tiny_base_model), "goemotions", **kw)
    bf16 = run_probe(str(tiny_base_model), "goemotions", bf16=True, **kw)
    assert seen == [False, False, True, True]  # train and test split of each run
    assert fp32.report["bf16_autocast"] is False and bf16.report["bf16_autocast"] is True
    assert not torch.is_autocast_enabled("cpu")
