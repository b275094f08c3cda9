"""Layer-wise emotion probes: where, how well and for how long a model encodes emotion.

Method from "Decoding Emotion in the Deep: A Systematic Study of How LLMs Represent, Retain,
and Express Emotion" (Zhang & Zhong, 2025, arXiv:2510.04064): freeze the model, read the hidden
state of every layer (:mod:`emoscope.activations`) and train a light classifier per layer.

* Probes: multinomial logistic regression (L2, full-batch L-BFGS on standardised features,
  at most 100 iterations, the penalty picked from 1e-3..1 on a held-out slice of the training
  set) and a small MLP (one hidden layer,
  early stopping). Both are implemented here in torch, so no scikit-learn is needed at run time.
* Scores per layer: held-out accuracy and macro-F1 with percentile bootstrap 95% intervals
  (resampling test examples).
* Control: the same pipeline on a randomly initialised copy of the model (same architecture and
  tokenizer, built from its config), so that what the probe reads is separated from what any
  random projection of the tokens would allow (the usual probing control).
* Zero-shot baseline: the model itself is asked for the label through a chat backend
  (:mod:`emoscope.stimuli` documents the backend protocol), by generation or by label scoring
  (each label's log-likelihood as the reply, calibrated on development texts).
* Persistence: an emotional text is followed by neutral tokens; the probe is applied to the
  last-token state after each further token, giving accuracy against token offset (decoders).
* Malleability: the same texts under different system prompts; how the probe's read-out moves.

Modules: :mod:`~emoscope.probe.probes` (the classifiers), :mod:`~emoscope.probe.curves` (one
probe per layer, scored), :mod:`~emoscope.probe.data`, :mod:`~emoscope.probe.zero_shot`,
:mod:`~emoscope.probe.persistence` (persistence and malleability), :mod:`~emoscope.probe.run`
(the whole run of ``emoscope probe``) and :mod:`~emoscope.probe.plot`; the statistics are in
:mod:`emoscope.stats`.
"""

from __future__ import annotations

from emoscope.llm.parsing import parse_label
from emoscope.probe.curves import LayerScore, ProbeCurve, probe_layers
from emoscope.probe.data import ProbeData, prepare_probe_data
from emoscope.probe.persistence import NEUTRAL_CONTINUATION, malleability, persistence_curve
from emoscope.probe.plot import plot_layer_curves
from emoscope.probe.probes import PROBE_KINDS, LinearProbe, MLPProbe, Probe, fit_probe
from emoscope.probe.run import ProbeRun, run_probe
from emoscope.probe.zero_shot import zero_shot_baseline, zero_shot_scored
from emoscope.stats import bootstrap_ci, classification_scores

__all__ = [
    "NEUTRAL_CONTINUATION",
    "PROBE_KINDS",
    "LayerScore",
    "LinearProbe",
    "MLPProbe",
    "Probe",
    "ProbeCurve",
    "ProbeData",
    "ProbeRun",
    "bootstrap_ci",
    "classification_scores",
    "fit_probe",
    "malleability",
    "parse_label",
    "persistence_curve",
    "plot_layer_curves",
    "prepare_probe_data",
    "probe_layers",
    "run_probe",
    "zero_shot_baseline",
    "zero_shot_scored",
]
