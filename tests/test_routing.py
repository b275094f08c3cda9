"""One routing of taxonomies to heads: the Python API, the CLI, the HTTP service, annotate and
eval answer the same inputs the same way, for every taxonomy (shipped default model)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from emoscope import cli
from emoscope.labels import TAXONOMIES, get_taxonomy

TEXTS = ["thanks, that's so kind", "I can't believe you lied to me again!", "ok see you at 5"]
TURNS = [("Maya", "I got the job!"), ("Sam", "So you're leaving."), ("Maya", "I'm sorry...")]


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    from emoscope.recognizers.encoder import EncoderRecognizer, default_model_path

    if not (default_model_path() / "model.safetensors").exists():
        pytest.skip("default model not built")
    return EncoderRecognizer()


def _dialogue():  # type: ignore[no-untyped-def]
    from emoscope import Dialogue, Utterance

    return Dialogue([Utterance(t, s) for s, t in TURNS])


def test_route_head_rule(model) -> None:  # type: ignore[no-untyped-def]
    from emoscope.recognizers.encoder import route_head

    cfg = model.config
    for kind in ("text", "turn"):
        assert route_head(cfg, "goemotions", kind)[0].name == "goemotions"
        assert route_head(cfg, "meld", kind) == (cfg.head("meld"), None)
        assert route_head(cfg, "emorynlp", kind)[0].name == "emorynlp"
    assert route_head(cfg, "ekman", "text")[0].name == "goemotions"
    assert route_head(cfg, "ekman", "turn")[0].name == "meld"
    with pytest.raises(ValueError, match="input kind"):
        route_head(cfg, "ekman", "tweet")


@pytest.mark.parametrize("taxonomy", sorted(TAXONOMIES))
def test_four_front_ends_agree(taxonomy: str, model, monkeypatch, capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    import emoscope
    import emoscope.recognizers as recognizers
    from emoscope.annotate import AnnotateOptions, annotate
    from emoscope.serve import ServeConfig, create_app

    tax = get_taxonomy(taxonomy)
    # Python API: a model loaded in this taxonomy.
    api = emoscope.load(taxonomy=taxonomy)
    api_texts = [p.probs for p in api.predict(TEXTS)]
    api_turns = [p.probs for p in api.predict([_dialogue()])]
    assert all(set(p) == set(tax.labels) for p in api_texts + api_turns)

    # CLI: the shared model stands in for loading, the routing is the CLI's own.
    monkeypatch.setattr(recognizers, "load_recognizer", lambda name, **kw: model)
    with pytest.raises(SystemExit) as exc:
        cli.main(["analyze", "--taxonomy", taxonomy, "--json", *TEXTS])
    assert exc.value.code in (0, None)
    cli_texts = [json.loads(line)["probs"] for line in capsys.readouterr().out.splitlines()]
    conv = tmp_path / "conv.json"
    conv.write_text(
        json.dumps({"utterances": [{"speaker": s, "text": t} for s, t in TURNS]}), "utf-8"
    )
    out = tmp_path / "preds.json"
    with pytest.raises(SystemExit) as exc:
        cli.main(["dialogue", str(conv), "--taxonomy", taxonomy, "-o", str(out)])
    assert exc.value.code in (0, None), capsys.readouterr().err
    saved = json.loads(out.read_text("utf-8"))
    cli_turns = [u["prediction"]["probs"] for u in saved["dialogues"][0]["utterances"]]

    # HTTP service.
    with TestClient(create_app(ServeConfig(), recognizer=model)) as client:
        r = client.post("/v1/analyze", json={"texts": TEXTS, "taxonomy": taxonomy})
        assert r.status_code == 200, r.text
        http_texts = [p["probs"] for p in r.json()["predictions"]]
        body = {"utterances": [{"speaker": s, "text": t} for s, t in TURNS], "taxonomy": taxonomy}
        r = client.post("/v1/dialogue", json=body)
        assert r.status_code == 200, r.text
        http_turns = [u["prediction"]["probs"] for u in r.json()["utterances"]]

    # Batch annotation (texts, then one dialogue).
    src = tmp_path / "in.csv"
    with open(src, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "dlg", "spk"])
        w.writerows([[t, "", ""] for t in TEXTS])
    opts = AnnotateOptions(recognizer="default", taxonomy=taxonomy)
    annotate(src, tmp_path / "out.jsonl", opts, workers=1, progress=False, recognizer=model)
    ann_texts = [
        json.loads(json.loads(line)["pred_probs"])
        if isinstance(json.loads(line)["pred_probs"], str)
        else json.loads(line)["pred_probs"]
        for line in (tmp_path / "out.jsonl").read_text("utf-8").splitlines()
    ]
    src2 = tmp_path / "dlg.csv"
    with open(src2, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "dlg", "spk"])
        w.writerows([[t, "d1", s] for s, t in TURNS])
    opts2 = AnnotateOptions(
        recognizer="default", taxonomy=taxonomy, dialogue_col="dlg", speaker_col="spk"
    )
    annotate(src2, tmp_path / "out2.jsonl", opts2, workers=1, progress=False, recognizer=model)
    ann_turns = [
        json.loads(json.loads(line)["pred_probs"])
        if isinstance(json.loads(line)["pred_probs"], str)
        else json.loads(line)["pred_probs"]
        for line in (tmp_path / "out2.jsonl").read_text("utf-8").splitlines()
    ]

    def vec(rows: list[dict[str, float]]) -> np.ndarray:
        return np.array([[r[lab] for lab in tax.labels] for r in rows])

    for front_end, texts, turns in [
        ("cli", cli_texts, cli_turns),
        ("http", http_texts, http_turns),
        ("annotate", ann_texts, ann_turns),
    ]:
        np.testing.assert_allclose(vec(texts), vec(api_texts), atol=2e-3, err_msg=front_end)
        np.testing.assert_allclose(vec(turns), vec(api_turns), atol=2e-3, err_msg=front_end)


def test_eval_uses_the_taxonomy_head(model) -> None:  # type: ignore[no-untyped-def]
    """eval scores a GoEmotions set with the GoEmotions head, not a mapped MELD head."""
    from emoscope.datasets.base import Dataset, Example
    from emoscope.evaluate import evaluate

    ds = Dataset(
        name="mini",
        split="test",
        taxonomy=get_taxonomy("goemotions"),
        examples=[Example(text=t, labels=("gratitude",)) for t in TEXTS[:1]],
    )
    res = evaluate(model, ds, progress=False)
    assert res.mapping == "identity"
    assert res.classification["accuracy"] == 1.0  # gratitude 0.96 with its own head


def test_neutral_prior_reweights_neutral(model, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from emoscope.recognizers.encoder import EncoderRecognizer

    texts = ["ok see you at 5", "why would you do that"]
    for taxonomy in ("meld", "ekman", "goemotions"):
        plain = EncoderRecognizer(model=model.model, tokenizer=model.tokenizer, taxonomy=taxonomy)
        low = EncoderRecognizer(
            model=model.model, tokenizer=model.tokenizer, taxonomy=taxonomy, neutral_prior=0.35
        )
        p, q = plain.predict_proba(texts), low.predict_proba(texts)
        n = plain.labels.index("neutral")
        expected = p.copy()
        expected[:, n] *= 0.35
        expected /= expected.sum(1, keepdims=True)
        np.testing.assert_allclose(q, expected, atol=1e-6)
        assert (q[:, n] < p[:, n]).all()
    with pytest.raises(Exception, match="positive number"):
        EncoderRecognizer(model=model.model, tokenizer=model.tokenizer, neutral_prior=0)

    import emoscope.recognizers as recognizers

    seen: dict[str, str] = {}

    def fake_load(name: str, **kw: str):  # type: ignore[no-untyped-def]
        seen.update(kw)
        return EncoderRecognizer(model=model.model, tokenizer=model.tokenizer, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(recognizers, "load_recognizer", fake_load)
    with pytest.raises(SystemExit):
        cli.main(["analyze", "--json", "--neutral-prior", "0.35", texts[0]])
    assert seen == {"neutral_prior": "0.35"}
    got = json.loads(capsys.readouterr().out)["probs"]["neutral"]
    low = EncoderRecognizer(model=model.model, tokenizer=model.tokenizer, neutral_prior=0.35)
    assert got == pytest.approx(low.predict([texts[0]])[0].probs["neutral"], abs=1e-6)
