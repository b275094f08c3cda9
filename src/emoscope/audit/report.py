"""The audit report: ``audit.json``, ``report.md`` and a self-contained ``report.html``.

Both documents are rendered from one list of blocks (headings, paragraphs, tables, figures)
built from the section results, so they say the same thing; the HTML carries its figures
inline as base64 PNG data URIs and loads nothing from anywhere (it opens offline). The PNGs
are also written beside ``report.md``, which links them.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoscope._io import atomic_open

__all__ = [
    "FIGURES",
    "render_audit",
    "write_audit_report",
]

#: Every figure an audit can draw (others of these names left from an earlier run are removed).
FIGURES = (
    "reliability.png",
    "confusion.png",
    "label_distribution.png",
    "stimuli.png",
    "probe_layers.png",
    "steering.png",
)

_TITLES = {
    "recognition": "Emotion recognition in conversation (MELD)",
    "benchmarks": "Emotional-intelligence benchmarks",
    "stimuli": "Sensitivity to emotional stimuli",
    "probes": "Probes: where the model encodes emotion",
    "steering": "Steerability along emotion directions",
}
_ANCHORS = (
    "Anchors (papers' reported relative gains, not comparable one-to-one): EmotionPrompt "
    "+8.00% (Instruction Induction) / +115% (BIG-Bench); NegativePrompt +12.89% / +46.25%."
)


@dataclass(frozen=True)
class _Block:
    kind: str  # h2, h3, p, table, img, list
    text: str = ""
    header: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    items: tuple[str, ...] = ()


def _f(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return "-" if math.isnan(x) else f"{x:.{digits}f}"
    return str(x)


def _pct(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:+.1%}"


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# figures


def _distribution_png(gold: Mapping[str, float], pred: Mapping[str, float]) -> bytes:
    from matplotlib.figure import Figure

    labels = list(gold)
    xs = range(len(labels))
    fig = Figure(figsize=(6.4, 3.4))
    ax = fig.add_subplot()
    ax.bar([x - 0.2 for x in xs], [gold[k] for k in labels], width=0.4, label="gold")
    ax.bar([x + 0.2 for x in xs], [pred[k] for k in labels], width=0.4, label="predicted")
    ax.set_xticks(list(xs), labels, rotation=30, ha="right")
    ax.set_ylabel("share of utterances")
    ax.set_ylim(0, 1)
    ax.set_title("MELD test: gold vs predicted labels")
    ax.legend()
    return _png(fig)


def _stimuli_png(tasks: Mapping[str, Any]) -> bytes:
    from matplotlib.figure import Figure

    done = [(n, t) for n, t in tasks.items() if t.get("status") == "done"]
    fig = Figure(figsize=(9.0, 2.9 * len(done)))
    for i, (name, t) in enumerate(done):
        ax = fig.add_subplot(len(done), 1, i + 1)
        rows = t["rows"]
        xs = range(len(rows))
        deltas = [r["delta"] for r in rows]
        lo = [r["delta"] - r["ci"][0] for r in rows]
        hi = [r["ci"][1] - r["delta"] for r in rows]
        colors = ["C3" if (r.get("p_holm") or 1) < 0.05 else "C0" for r in rows]
        ax.bar(list(xs), deltas, yerr=[lo, hi], color=colors, capsize=2)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(list(xs), [r["condition"] for r in rows], rotation=60, fontsize=8)
        ax.set_ylabel("Δ accuracy")
        ax.set_title(
            f"{name}: accuracy change vs plain prompt ({t['n_items']} items, "
            f"baseline {t['baseline_score']:.3f}); red = Holm p < 0.05",
            fontsize=9,
        )
    fig.tight_layout()
    return _png(fig)


def _probe_png(probes: Mapping[str, Any]) -> bytes:
    from emoscope.probe import plot_layer_curves

    report = probes["report"]
    curves = [("model", report["curves"]["model"])]
    if "control" in report["curves"]:
        curves.append(("random-init control", report["curves"]["control"]))
    maj = report["majority_baseline"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.png"
        plot_layer_curves(
            [("GoEmotions -> Ekman, linear probe", curves)],
            path,
            baselines=[
                {"majority class": {"accuracy": maj["accuracy"], "macro_f1": maj["macro_f1"]}}
            ],
        )
        return path.read_bytes()


def _steering_png(steer: Mapping[str, Any]) -> bytes:
    from matplotlib.figure import Figure

    rows = steer["rows"]
    alphas = [r["alpha"] for r in rows]
    fig = Figure(figsize=(9.0, 3.4))
    ax = fig.add_subplot(1, 2, 1)
    for emo in steer["emotions"]:
        ax.plot(alphas, [r["per_emotion"][emo] for r in rows], lw=0.8, alpha=0.6, label=emo)
    ax.plot(alphas, [r["success"] for r in rows], "k-o", lw=2, label="mean")
    ax.plot(alphas, [r["degenerate_share"] for r in rows], "r--x", label="degenerate share")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("alpha (x RMS of the stream)")
    ax.set_ylabel("success rate (degenerate = failure)")
    ax.set_title(f"layers {steer['layers'][0]}-{steer['layers'][-1]}", fontsize=9)
    ax.legend(fontsize=7)
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.plot(alphas, [r["perplexity_median"] for r in rows], "o-")
    ax2.set_xlabel("alpha")
    ax2.set_ylabel("median perplexity (unsteered model)")
    ax2.set_title("fluency of non-degenerate replies", fontsize=9)
    fig.tight_layout()
    return _png(fig)


# --------------------------------------------------------------------------------------------
# blocks per section


def _skip_block(result: Mapping[str, Any]) -> list[_Block]:
    return [_Block("p", f"Skipped: {result.get('reason', 'not run')}.")]


def _recognition(r: Mapping[str, Any], figures: dict[str, bytes]) -> list[_Block]:
    from emoscope.evaluate import EvalResult
    from emoscope.report import render_report

    mode = (
        "label scoring (each label's log-likelihood as the answer, normalised over the labels)"
        if r["mode"] == "score"
        else "generated answers, parsed"
    )
    maj = r["majority_baseline"]
    cal = r["calibration"]
    blocks = [
        _Block(
            "p",
            f"PRC-Emo prompt (k = {r['retrieve']} retrieved demonstrations), {mode}; "
            f"{r['n']} utterances of MELD test read in their dialogues.",
        ),
        _Block(
            "table",
            header=("metric", "model", "majority class"),
            rows=(
                ("weighted-F1", _f(r["weighted_f1"]), _f(maj["weighted_f1"])),
                ("accuracy", _f(r["accuracy"]), _f(maj["accuracy"])),
                ("macro-F1", _f(r["macro_f1"]), "-"),
                ("ECE (10 bins)", _f(cal.get("ece")), "-"),
                ("Brier", _f(cal.get("brier")), "-"),
                ("mean confidence", _f(cal.get("mean_confidence")), "-"),
                ("parse failures", str(r["parse_failures"]), "-"),
            ),
        ),
        _Block(
            "table",
            header=("label", "gold share", "predicted share"),
            rows=tuple(
                (lab, _f(r["gold_distribution"][lab]), _f(r["predicted_distribution"][lab]))
                for lab in r["gold_distribution"]
            ),
        ),
    ]
    if r.get("notes"):
        blocks.append(_Block("list", items=tuple(r["notes"])))
    figures["label_distribution.png"] = _distribution_png(
        r["gold_distribution"], r["predicted_distribution"]
    )
    blocks.append(_Block("img", "label_distribution.png"))
    files = render_report(EvalResult(**r["eval"]))
    for name in ("reliability.png", "confusion.png"):
        if name in files:
            figures[name] = files[name]
            blocks.append(_Block("img", name))
    return blocks


def _benchmarks(r: Mapping[str, Any], _figures: dict[str, bytes]) -> list[_Block]:
    rows = []
    for task, res in r["emobench"].items():
        if res.get("status") != "done":
            rows.append((f"EmoBench {task}", "skipped", "-", "-", res.get("reason", "")))
            continue
        acc = res["accuracy"]
        cats = ", ".join(f"{c} {_f(v)}" for c, v in acc.items() if c != "Overall")
        how = (
            "choice letters scored"
            if res["scoring"] == "label"
            else (f"generated JSON, {res.get('unparsed', 0)} unparsed")
        )
        rows.append(
            (f"EmoBench {task}", _f(acc["Overall"]), _f(res["chance"]), str(res["n"]["Overall"]),
             f"{how}; {cats}")
        )  # fmt: skip
    eq = r["eqbench"]
    if eq.get("status") == "skipped":
        rows.append(("EQ-Bench v2", "skipped", "-", "-", eq.get("reason", "")))
    else:
        off = eq["official"]
        rows.append(
            ("EQ-Bench v2, official (generated)", _f(off["score"], 2), "0", str(off["n_questions"]),
             f"{off['parseable']} parseable, parse-failure rate {_f(off['parse_failure_rate'])}")
        )  # fmt: skip
        if "expected_value" in eq:
            ev = eq["expected_value"]
            rows.append(
                ("EQ-Bench v2, expected value (emoscope variant)", _f(ev["score"], 2), "0",
                 str(ev["n_questions"]), "intensity = E[0-10] of the scored distribution")
            )  # fmt: skip
    blocks = [
        _Block("table", header=("benchmark", "score", "chance", "n", "how"), rows=tuple(rows)),
        _Block(
            "p",
            "EmoBench scores are accuracies (an EU item is right only when emotion and cause "
            "both are); EQ-Bench v2 is 0-100 (official formula; unparsed answers do not count, "
            "so a low parseable count makes the official score rest on few questions).",
        ),
    ]
    if eq.get("official", {}).get("raw_answers"):
        blocks.append(
            _Block(
                "list",
                items=tuple(
                    "raw EQ-Bench answer: " + " ".join(a.split())[:200]
                    for a in eq["official"]["raw_answers"]
                ),
            )
        )
    if r.get("notes"):
        blocks.append(_Block("list", items=tuple(r["notes"])))
    return blocks


def _stimuli(r: Mapping[str, Any], figures: dict[str, bytes]) -> list[_Block]:
    how = "label scoring" if r["scoring"] == "label" else "generated answers, parsed"
    blocks = [
        _Block(
            "p",
            f"Each stimulus appended to the prompt of the same items ({how}), compared with the "
            "plain prompt: exact McNemar test on the discordant pairs (b: right only without, "
            "c: right only with the stimulus); significance uncorrected and Holm-corrected over "
            "the stimuli of a task (* p < 0.05, ** p < 0.01, *** p < 0.001).",
        )
    ]
    for name, t in r["tasks"].items():
        blocks.append(_Block("h3", name))
        if t.get("status") != "done":
            blocks += _skip_block(t)
            continue
        rows = tuple(
            (
                row["condition"], _f(row["reference_score"]), _f(row["score"]),
                _pct(row["relative_change"]), f"[{row['ci'][0]:+.3f}, {row['ci'][1]:+.3f}]",
                _f(row.get("b")), _f(row.get("c")), f"{row['p_value']:.3g}", row["significance"],
                _f(row.get("p_holm")), row.get("significance_holm") or "-",
            )
            for row in t["rows"]
        )  # fmt: skip
        blocks.append(
            _Block(
                "p",
                f"{t['n_items']} items; plain-prompt accuracy {_f(t['baseline_score'])}.",
            )
        )
        blocks.append(
            _Block(
                "table",
                header=(
                    "stimulus",
                    "plain",
                    "with",
                    "rel. change",
                    "95% CI of Δ",
                    "b",
                    "c",
                    "p",
                    "sig.",
                    "p Holm",
                    "sig. Holm",
                ),
                rows=rows,
            )
        )
    blocks.append(_Block("p", _ANCHORS))
    if r.get("notes"):
        blocks.append(_Block("list", items=tuple(r["notes"])))
    if any(t.get("status") == "done" for t in r["tasks"].values()):
        figures["stimuli.png"] = _stimuli_png(r["tasks"])
        blocks.append(_Block("img", "stimuli.png"))
    return blocks


def _probes(r: Mapping[str, Any], figures: dict[str, bytes]) -> list[_Block]:
    best, maj = r["best"], r["majority_baseline"]
    lo, hi = best["accuracy_ci"]
    rows = [
        ("best layer (model)", str(best["layer"]), f"{_f(best['accuracy'])} [{_f(lo)}, {_f(hi)}]"),
        ("majority class", "-", _f(maj["accuracy"])),
    ]
    if "control_best" in r:
        rows.insert(1, ("best layer (random-init control)", "-", _f(r["control_best"])))
    figures["probe_layers.png"] = _probe_png(r)
    return [
        _Block(
            "p",
            f"Linear probe on the last-token state of every layer ({r['n_layers']} blocks), "
            f"{r['dataset']}, {r['n_train']} train / {r['n_test']} test texts; 95% bootstrap "
            "intervals.",
        ),
        _Block("table", header=("", "layer", "accuracy [95% CI]"), rows=tuple(rows)),
        _Block("img", "probe_layers.png"),
    ]


def _steering(r: Mapping[str, Any], figures: dict[str, bytes]) -> list[_Block]:
    rows = tuple(
        (_f(x["alpha"], 1), _f(x["success"]), _f(x["degenerate_share"]),
         _f(x["perplexity_median"], 2), _f(x["distinct_2"]))
        for x in r["rows"]
    )  # fmt: skip
    best = r["matched_fluency"]
    head = (
        f"At matched fluency ({r['fluency_rule']}): success {_f(best['success'])} at alpha "
        f"{_f(best['alpha'], 1)} (unsteered {_f(r['rows'][0]['success'])})."
        if best
        else f"No steered point keeps fluency ({r['fluency_rule']}); unsteered success "
        f"{_f(r['rows'][0]['success'])}."
    )
    figures["steering.png"] = _steering_png(r)
    from emoscope.metrics import is_degenerate

    examples = []
    for emo in r["emotions"][:2]:
        for row in r["per_emotion"][emo]["rows"]:
            if row["examples"]:
                text = row["examples"][0]["text"]
                tag = " [degenerate: a failure]" if is_degenerate(text) else ""
                clipped = " ".join(text.split())[:160]
                examples.append(f'{emo}, alpha {row["alpha"]:g}: "{clipped}"{tag}')
    return [
        _Block(
            "p",
            f"Directions: {r['directions']}. Steering at layers {r['layers'][0]}-{r['layers'][-1]} "
            f"({r['positions']} positions), {r['n_prompts']} neutral prompts per emotion "
            f"({', '.join(r['emotions'])}); judge: {r['judge']} (Ekman label); degenerate "
            "replies count as failures.",
        ),
        _Block("p", head),
        _Block(
            "table",
            header=("alpha", "success", "degenerate", "perplexity (median)", "distinct-2"),
            rows=rows,
        ),
        _Block("img", "steering.png"),
        _Block("p", "First reply per point (read against the success rates above):"),
        _Block("list", items=tuple(examples)),
    ]


_RENDER = {
    "recognition": _recognition,
    "benchmarks": _benchmarks,
    "stimuli": _stimuli,
    "probes": _probes,
    "steering": _steering,
}


def _blocks(audit: Mapping[str, Any], figures: dict[str, bytes]) -> list[_Block]:
    t, m = audit["target"], audit["machine"]
    kind = "open weights" if t["open_weight"] else "black box"
    scoring = "scores choices" if t["scores_choices"] else "cannot score given answers"
    blocks = [
        _Block(
            "p",
            f"Model `{t['model']}` ({t['backend']} backend, {kind}; {scoring}). Size "
            f"`{audit['size']}`; emoscope {audit['emoscope_version']}; finished "
            f"{audit['finished']}; {audit['seconds']:.0f} s wall time (cached sections take "
            f"none), {m.get('process_cpu_seconds', 0):.0f} s CPU time on "
            f"{m.get('torch_threads') or '?'} torch threads; load average "
            f"{m['load_average_start'][0]:.1f} at the start (other jobs may share the machine).",
        )
    ]
    summary = []
    for name in audit["sections_run"]:
        r = audit["sections"][name]
        state = "skipped" if r["status"] == "skipped" else (
            "cached" if r.get("cached") else f"{r.get('seconds', 0):.0f} s"
        )  # fmt: skip
        summary.append((name, state))
    blocks.append(_Block("table", header=("section", "run"), rows=tuple(summary)))
    for name in audit["sections_run"]:
        r = audit["sections"][name]
        blocks.append(_Block("h2", _TITLES[name]))
        blocks += _skip_block(r) if r["status"] == "skipped" else _RENDER[name](r, figures)
    return blocks


# --------------------------------------------------------------------------------------------
# markdown and HTML


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(title: str, blocks: Sequence[_Block]) -> str:
    out = [f"# {title}", ""]
    for b in blocks:
        if b.kind in ("h2", "h3"):
            out += [f"{'#' * int(b.kind[1])} {b.text}", ""]
        elif b.kind == "p":
            out += [b.text, ""]
        elif b.kind == "list":
            out += [f"- {i}" for i in b.items] + [""]
        elif b.kind == "table":
            out.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
            out.append("|" + "|".join("---" for _ in b.header) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("")
        elif b.kind == "img":
            out += [f"![{b.text}]({b.text})", ""]
    return "\n".join(out)


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;"
    "color:#222}table{border-collapse:collapse;margin:.8em 0;font-size:.9em}"
    "td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}th{background:#f2f2f2}"
    "img{max-width:100%;display:block;margin:.8em 0}code{background:#f4f4f4;padding:0 .2em}"
)


def _inline(text: str) -> str:
    """Escape text; `code` spans become <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _html(title: str, blocks: Sequence[_Block], figures: Mapping[str, bytes]) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for b in blocks:
        if b.kind in ("h2", "h3"):
            out.append(f"<{b.kind}>{_inline(b.text)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{_inline(b.text)}</p>")
        elif b.kind == "list":
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "table":
            head = "".join(f"<th>{_inline(h)}</th>" for h in b.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in b.rows
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif b.kind == "img":
            data = base64.b64encode(figures[b.text]).decode("ascii")
            out.append(
                f'<figure><img alt="{html.escape(b.text)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(b.text)}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render_audit(audit: Mapping[str, Any]) -> dict[str, bytes]:
    """Every report file as ``{file name: content}`` (nothing is written)."""
    figures: dict[str, bytes] = {}
    blocks = _blocks(audit, figures)
    title = f"Emotion audit of {audit['target']['model']}"
    files = {
        "audit.json": (json.dumps(audit, indent=2, ensure_ascii=False) + "\n").encode(),
        "report.md": _markdown(title, blocks).encode(),
        "report.html": _html(title, blocks, figures).encode(),
    }
    files.update(figures)
    return files


def write_audit_report(audit: Mapping[str, Any], folder: str | Path) -> list[Path]:
    """Render the report and write its files into ``folder``, each atomically; figures of an
    earlier run that this one does not draw are removed. Returns the paths written."""
    files = render_audit(audit)
    out = Path(folder)
    written = []
    for name, content in files.items():
        with atomic_open(out / name, "wb", encoding=None) as fh:
            fh.write(content)
        written.append(out / name)
    for name in FIGURES:
        if name not in files:
            (out / name).unlink(missing_ok=True)
    return written
