"""Taxonomies, their VAD coordinates and the mappings between them (emoscope.labels)."""

from __future__ import annotations

import itertools
import json
from importlib import resources

import numpy as np
import pytest

from emoscope.labels import (
    TAXONOMIES,
    Taxonomy,
    get_taxonomy,
    map_distribution,
    map_label,
    mapping_matrix,
)

# The grouping published with GoEmotions (data/ekman_mapping.json of google-research/goemotions),
# written out here independently of emoscope's table.
OFFICIAL_EKMAN = {
    "anger": ["anger", "annoyance", "disapproval"],
    "disgust": ["disgust"],
    "fear": ["fear", "nervousness"],
    "joy": [
        "joy",
        "amusement",
        "approval",
        "excitement",
        "gratitude",
        "love",
        "optimism",
        "relief",
        "pride",
        "admiration",
        "desire",
        "caring",
    ],
    "sadness": ["sadness", "disappointment", "embarrassment", "grief", "remorse"],
    "surprise": ["surprise", "realization", "confusion", "curiosity"],
    "neutral": ["neutral"],
}
GO_TO_EKMAN = {go: ek for ek, gos in OFFICIAL_EKMAN.items() for go in gos}

PAIRS = list(itertools.permutations(TAXONOMIES, 2))


def _one_hot_rows(m: np.ndarray) -> bool:
    return bool(np.all((m == 0) | (m == 1)) and np.all(m.sum(axis=1) == 1))


# ------------------------------------------------------------------------------------------
# Taxonomies
# ------------------------------------------------------------------------------------------


def test_taxonomy_sizes_and_neutral() -> None:
    sizes = {name: len(t) for name, t in TAXONOMIES.items()}
    assert sizes == {"goemotions": 28, "ekman": 7, "meld": 7, "emorynlp": 7, "plutchik": 8}
    assert get_taxonomy("plutchik").neutral is None
    for name in ("goemotions", "ekman", "meld", "emorynlp"):
        assert get_taxonomy(name).neutral == "neutral"
        assert "neutral" in get_taxonomy(name).labels
    assert get_taxonomy("goemotions").multi_label
    assert not get_taxonomy("meld").multi_label


def test_get_taxonomy_by_name_and_errors() -> None:
    meld = get_taxonomy("meld")
    assert get_taxonomy(" MELD ") is meld
    assert get_taxonomy(meld) is meld
    with pytest.raises(ValueError, match=r"unknown taxonomy 'iemocap'; expected one of: .*meld"):
        get_taxonomy("iemocap")


def test_normalize_case_whitespace_and_aliases() -> None:
    meld = get_taxonomy("meld")
    assert meld.normalize("JOY") == "joy"
    assert meld.normalize("  Sadness \n") == "sadness"
    assert "Anger" in meld
    assert "happiness" not in meld
    assert 3 not in meld
    emory = Taxonomy(
        "emory-test",
        get_taxonomy("emorynlp").labels,
        aliases=(("Joyous", "joyful"), ("afraid", "scared")),
    )
    assert emory.normalize("joyous") == "joyful"
    assert emory.normalize("AFRAID") == "scared"
    assert "Joyous" in emory
    assert emory.index("afraid") == emory.labels.index("scared")


def test_normalize_unknown_label_message() -> None:
    with pytest.raises(ValueError) as info:
        get_taxonomy("meld").normalize("happiness")
    message = str(info.value)
    assert "unknown meld label 'happiness'" in message
    assert "expected one of: neutral, joy, surprise, anger, sadness, disgust, fear" in message
    with pytest.raises(ValueError, match="unknown ekman label 'joyful'"):
        get_taxonomy("ekman").index("joyful")


# ------------------------------------------------------------------------------------------
# VAD coordinates
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TAXONOMIES))
def test_label_vad_in_range(name: str) -> None:
    tax = get_taxonomy(name)
    vad = tax.vad
    assert vad.shape == (len(tax), 3)
    assert np.all(np.isfinite(vad))
    assert np.all((vad >= -1) & (vad <= 1)), f"{name}: VAD outside [-1, 1]"
    # No two labels of one taxonomy share coordinates (the VAD mappings need them apart).
    assert len({tuple(row) for row in vad.tolist()}) == len(tax)
    for lab in tax.labels:
        assert tax.vad_of(lab) == tuple(float(x) for x in vad[tax.index(lab)])


def test_label_vad_file_records_nrc_source_and_rescaling() -> None:
    text = resources.files("emoscope").joinpath("data/label_vad.json").read_text("utf-8")
    table = json.loads(text)
    assert "2x-1" in table["scale"]
    sources = table["sources"]
    assert "Mohammad" in sources["nrc-vad-v1"] and "2018" in sources["nrc-vad-v1"]
    used = {lab for tax in TAXONOMIES.values() for lab in tax.labels}
    assert used <= set(table["labels"])
    for lab in used:
        entry = table["labels"][lab]
        assert entry["source"] in sources, lab
        assert entry["found_in"], lab
        raw = np.array(entry["raw"], dtype=float)
        assert np.all((raw >= 0) & (raw <= 1)), lab
        np.testing.assert_allclose(entry["vad"], 2 * raw - 1, atol=1e-3, err_msg=lab)


def test_label_vad_is_plausible() -> None:
    ekman = get_taxonomy("ekman")
    assert ekman.vad_of("joy")[0] > 0.5 > -0.5 > ekman.vad_of("sadness")[0]
    assert ekman.vad_of("fear")[1] > ekman.vad_of("sadness")[1]  # fear is the more aroused


# ------------------------------------------------------------------------------------------
# Mappings
# ------------------------------------------------------------------------------------------


def test_goemotions_to_ekman_is_the_official_grouping() -> None:
    go = get_taxonomy("goemotions")
    assert set(GO_TO_EKMAN) == set(go.labels)  # all 28 labels covered
    for lab in go.labels:
        assert map_label(lab, "goemotions", "ekman") == GO_TO_EKMAN[lab], lab
    m, method = mapping_matrix("goemotions", "ekman")
    assert method == "official:goemotions->ekman"
    assert m.shape == (28, 7)
    assert _one_hot_rows(m)
    assert map_label("nervousness", "goemotions", "ekman") == "fear"
    assert map_label("realization", "goemotions", "ekman") == "surprise"
    assert map_label("Disapproval", "goemotions", "ekman") == "anger"


def test_goemotions_to_meld_chains_official_groupings() -> None:
    m, method = mapping_matrix("goemotions", "meld")
    assert method == "official:goemotions->ekman->meld"
    assert _one_hot_rows(m)
    meld, go = get_taxonomy("meld"), get_taxonomy("goemotions")
    for lab in go.labels:
        assert meld.labels[int(np.argmax(m[go.index(lab)]))] == GO_TO_EKMAN[lab], lab
    probs = {"nervousness": 0.5, "fear": 0.25, "realization": 0.25}
    out = map_distribution(probs, "goemotions", "meld")
    assert list(out) == list(meld.labels)
    assert out["fear"] == pytest.approx(0.75)
    assert out["surprise"] == pytest.approx(0.25)


def test_ekman_meld_identity_both_ways() -> None:
    for src, tgt in [("ekman", "meld"), ("meld", "ekman")]:
        m, method = mapping_matrix(src, tgt)
        assert method == f"official:{src}->{tgt}"
        assert _one_hot_rows(m) and np.all(m.sum(axis=0) == 1)  # a permutation
        for lab in get_taxonomy(src).labels:
            assert map_label(lab, src, tgt) == lab
    m, method = mapping_matrix("meld", "meld")
    assert method == "identity"
    np.testing.assert_array_equal(m, np.eye(7))


def test_emorynlp_meld_vad_nearest() -> None:
    for src, tgt in [("emorynlp", "meld"), ("meld", "emorynlp")]:
        m, method = mapping_matrix(src, tgt)
        assert method == "vad-nearest"
        assert _one_hot_rows(m)
        s, t = get_taxonomy(src), get_taxonomy(tgt)
        assert map_label("neutral", src, tgt) == "neutral"
        neutral_col = t.index("neutral")
        for lab in s.labels:
            if lab != "neutral":  # emotions never collapse to neutral
                assert m[s.index(lab), neutral_col] == 0, lab
    assert map_label("joyful", "emorynlp", "meld") == "joy"
    assert map_label("sad", "emorynlp", "meld") == "sadness"
    assert map_label("scared", "emorynlp", "meld") == "fear"
    assert map_label("joy", "meld", "emorynlp") == "joyful"


def test_vad_nearest_picks_the_nearest_label() -> None:
    src, tgt = get_taxonomy("emorynlp"), get_taxonomy("meld")
    m, _ = mapping_matrix(src, tgt)
    for i, lab in enumerate(src.labels):
        if lab == "neutral":
            continue
        j = int(np.argmax(m[i]))
        d = ((tgt.vad - src.vad[i]) ** 2).sum(axis=1)
        others = [k for k, t in enumerate(tgt.labels) if t != "neutral"]
        assert d[j] == min(d[k] for k in others), lab


def test_plutchik_target_spreads_neutral_uniformly() -> None:
    plutchik = get_taxonomy("plutchik")
    for src in ("goemotions", "meld", "emorynlp", "ekman"):
        m, method = mapping_matrix(src, "plutchik")
        s = get_taxonomy(src)
        np.testing.assert_allclose(m[s.index("neutral")], np.full(8, 1 / 8))
        others = [i for i, lab in enumerate(s.labels) if lab != "neutral"]
        assert _one_hot_rows(m[others]), src
        assert method == "vad-nearest"
    out = map_distribution({"neutral": 1.0}, "meld", plutchik)
    assert out == pytest.approx(dict.fromkeys(plutchik.labels, 1 / 8))
    # From plutchik (no neutral) nothing is sent to neutral.
    m, _ = mapping_matrix("plutchik", "meld")
    assert _one_hot_rows(m) and m[:, get_taxonomy("meld").index("neutral")].sum() == 0


@pytest.mark.parametrize(("src", "tgt"), PAIRS)
def test_map_distribution_preserves_mass(src: str, tgt: str) -> None:
    rng = np.random.default_rng(len(src) * 31 + len(tgt))
    s, t = get_taxonomy(src), get_taxonomy(tgt)
    m, _ = mapping_matrix(s, t)
    assert m.shape == (len(s), len(t))
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    for _ in range(5):
        p = rng.dirichlet(np.ones(len(s)))
        out = map_distribution(dict(zip(s.labels, p, strict=True)), s, t)
        assert list(out) == list(t.labels)
        assert sum(out.values()) == pytest.approx(1.0)
        assert min(out.values()) >= 0.0


def test_mapping_matrix_returns_a_copy() -> None:
    m, _ = mapping_matrix("goemotions", "ekman")
    m[:] = 0
    again, _ = mapping_matrix("goemotions", "ekman")
    assert again.sum() == 28


def test_map_distribution_unknown_label() -> None:
    with pytest.raises(ValueError, match="unknown meld label 'happy'"):
        map_distribution({"happy": 1.0}, "meld", "ekman")


# ------------------------------------------------------------------------------------------
# Mixture and expected VAD
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TAXONOMIES))
def test_mixture_sums_to_one_and_peaks_at_the_given_label(name: str) -> None:
    tax = get_taxonomy(name)
    for lab in tax.labels:
        mix = tax.mixture(tax.vad_of(lab))
        assert list(mix) == list(tax.labels)
        assert sum(mix.values()) == pytest.approx(1.0)
        assert max(mix, key=mix.__getitem__) == lab
        assert all(0.0 <= v <= 1.0 for v in mix.values())


def test_mixture_sigma_and_dims() -> None:
    ekman = get_taxonomy("ekman")
    joy = ekman.vad_of("joy")
    sharp, broad = ekman.mixture(joy, sigma=0.1), ekman.mixture(joy, sigma=1.0)
    assert sharp["joy"] > broad["joy"]
    valence_only = ekman.mixture((0.9, 0.0, 0.0), dims=(0,))
    assert sum(valence_only.values()) == pytest.approx(1.0)
    assert max(valence_only, key=valence_only.__getitem__) in {"joy", "surprise"}
    # A far-away point still yields a distribution (no underflow to 0/0).
    far = ekman.mixture((50.0, 50.0, 50.0), sigma=0.05)
    assert sum(far.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="sigma must be positive"):
        ekman.mixture(joy, sigma=0)


def test_expected_vad() -> None:
    meld = get_taxonomy("meld")
    assert meld.expected_vad({"fear": 1.0}) == pytest.approx(meld.vad_of("fear"))
    half = meld.expected_vad({"joy": 0.5, "sadness": 0.5})
    want = (np.array(meld.vad_of("joy")) + np.array(meld.vad_of("sadness"))) / 2
    assert half == pytest.approx(tuple(want))
    uniform = meld.expected_vad([1 / 7] * 7)
    assert uniform == pytest.approx(tuple(meld.vad.mean(axis=0)))
    # Unnormalised weights are normalised.
    assert meld.expected_vad({"Joy": 2.0, "SADNESS": 2.0}) == pytest.approx(half)
    with pytest.raises(ValueError, match="sum to zero"):
        meld.expected_vad({"joy": 0.0})
    with pytest.raises(ValueError, match="expected 7 probabilities"):
        meld.expected_vad([0.5, 0.5])
