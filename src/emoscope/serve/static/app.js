// emoscope conversation explorer: parse a dialogue, POST it to /v1/dialogue, draw the result.
// Plain browser JavaScript, no dependencies and nothing fetched from outside this server.
"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  // One hue per Ekman group; the labels of a finer taxonomy get lighter/darker shades of the
  // hue of the Ekman label they map to (GET /v1/models gives each label's group).
  const GROUP_COLOURS = {
    anger: "#d62728",
    disgust: "#5c8a1e",
    fear: "#8e44ad",
    joy: "#e0a100",
    sadness: "#1f77b4",
    surprise: "#13a3b5",
    neutral: "#8a8f98",
  };
  const SPEAKER_COLOURS = ["#333333", "#c2185b", "#00796b", "#5d4037", "#3949ab", "#ef6c00"];
  const SAMPLE = [
    "Maya: I got the job! They called me this morning!",
    "Sam: Wait, seriously? The one in Lisbon?",
    "Maya: Yes! I start in March.",
    "Sam: Oh. So you're really leaving.",
    "Maya: Hey, don't look at me like that. It's only a two-hour flight.",
    "Sam: I know, I know. I'm proud of you. I'm just going to miss you.",
    "Maya: You'd better visit, or I will be furious.",
    "Sam: Deal. Now, who's going to water my plants?",
  ].join("\n");

  let models = null;

  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text; // never innerHTML: texts are user data
    return node;
  }

  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setStatus(message, isError) {
    const s = $("status");
    s.textContent = message;
    s.classList.toggle("error", Boolean(isError));
  }

  // ---------------------------------------------------------------------------------------
  // Input parsing
  // ---------------------------------------------------------------------------------------

  function turnFromJson(t, i) {
    if (typeof t === "string") return { speaker: null, text: t };
    if (t && typeof t === "object" && typeof t.text === "string") {
      const speaker = t.speaker === undefined || t.speaker === null ? null : String(t.speaker);
      return { speaker, text: t.text };
    }
    throw new Error(`turn ${i + 1} has no "text" string`);
  }

  function parseDialogue(raw) {
    const text = raw.trim();
    if (!text) throw new Error("the dialogue is empty: paste some turns or load the sample");
    let id = null;
    let turns;
    if (text[0] === "{" || text[0] === "[") {
      let data;
      try {
        data = JSON.parse(text);
      } catch (e) {
        throw new Error(`the input looks like JSON but does not parse: ${e.message}`);
      }
      if (Array.isArray(data)) turns = data;
      else if (data && Array.isArray(data.utterances)) {
        turns = data.utterances;
        id = data.id === undefined || data.id === null ? null : String(data.id);
      } else throw new Error('JSON input must be a list of turns or {"utterances": [...]}');
      turns = turns.map(turnFromJson);
    } else {
      turns = [];
      for (const line of text.split(/\r?\n/)) {
        if (!line.trim()) continue;
        const m = /^\s*([^:]{1,60}?)\s*:\s*(.*\S)\s*$/.exec(line);
        if (m) turns.push({ speaker: m[1], text: m[2] });
        else turns.push({ speaker: null, text: line.trim() });
      }
    }
    turns = turns.filter((t) => t.text.trim());
    if (!turns.length) throw new Error("no utterance with text found");
    return { id, utterances: turns };
  }

  // ---------------------------------------------------------------------------------------
  // Colours
  // ---------------------------------------------------------------------------------------

  function mix(hex, amount) {
    // amount > 0 mixes towards white, < 0 towards black
    const n = parseInt(hex.slice(1), 16);
    const rgb = [(n >> 16) & 255, (n >> 8) & 255, n & 255];
    const target = amount > 0 ? 255 : 0;
    const a = Math.abs(amount);
    const out = rgb.map((c) => Math.round(c + (target - c) * a));
    return "#" + out.map((c) => c.toString(16).padStart(2, "0")).join("");
  }

  function colourMap(taxonomyName) {
    const colours = new Map();
    const tax = models && models.taxonomies.find((t) => t.name === taxonomyName);
    if (!tax) return colours;
    const byGroup = new Map();
    for (const lab of tax.labels) {
      if (!byGroup.has(lab.group)) byGroup.set(lab.group, []);
      byGroup.get(lab.group).push(lab.name);
    }
    for (const [group, names] of byGroup) {
      const base = GROUP_COLOURS[group] || "#777777";
      // The label named like its group keeps the pure hue; the others alternate lighter and
      // darker shades, further from the hue the more there are.
      const others = names.filter((name) => name !== group);
      colours.set(group, base);
      others.forEach((name, k) => {
        const rank = k + 1;
        const step = (rank % 2 ? 1 : -1) * 0.14 * Math.ceil(rank / 2);
        colours.set(name, mix(base, Math.max(-0.55, Math.min(0.65, step))));
      });
    }
    return colours;
  }

  function colourOf(colours, label) {
    return colours.get(label) || "#777777";
  }

  // ---------------------------------------------------------------------------------------
  // Rendering
  // ---------------------------------------------------------------------------------------

  function highlight(index, on) {
    for (const node of document.querySelectorAll(`[data-index="${index}"]`)) {
      node.classList.toggle("hl", on);
    }
  }

  function hoverable(node, index) {
    node.setAttribute("data-index", String(index));
    node.addEventListener("mouseenter", () => highlight(index, true));
    node.addEventListener("mouseleave", () => highlight(index, false));
  }

  // The utterance text with each attributed word in a span: green supports the label, red
  // speaks against it, stronger colour for a larger weight (cues.attributions of ?explain=true).
  function cueText(text, attributions) {
    const node = el("p", "text");
    if (!attributions || !attributions.length) {
      node.textContent = text;
      return node;
    }
    let last = 0;
    for (const c of attributions) {
      node.append(document.createTextNode(text.slice(last, c.start)));
      const span = el("span", c.weight >= 0 ? "cue cue-for" : "cue cue-against", c.word);
      const alpha = Math.min(1, Math.abs(c.weight) * 2.5);
      const rgb = c.weight >= 0 ? "46, 160, 67" : "214, 39, 40";
      span.style.setProperty("background-color", `rgba(${rgb}, ${alpha.toFixed(2)})`);
      span.title = `${c.weight >= 0 ? "+" : ""}${c.weight.toFixed(3)}`;
      span.dataset.weight = String(c.weight);
      node.append(span);
      last = c.end;
    }
    node.append(document.createTextNode(text.slice(last)));
    return node;
  }

  function renderUtterances(data, colours) {
    const list = $("utterances");
    list.replaceChildren();
    for (const u of data.utterances) {
      const p = u.prediction;
      const colour = colourOf(colours, p.label);
      const item = el("li", "utterance");
      item.dataset.label = p.label;
      item.dataset.speaker = u.speaker || "";
      item.style.setProperty("border-left-color", colour);
      item.style.setProperty("background-color", colour + "26");
      hoverable(item, u.index);
      const meta = el("div", "meta");
      meta.append(
        el("span", "speaker", u.speaker || "(unknown speaker)"),
        el("span", "badge", `${p.labels.join(", ")} · ${(p.confidence * 100).toFixed(0)}%`),
      );
      const top = Object.entries(p.probs)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 3)
        .map(([k, v]) => `${k} ${v.toFixed(2)}`)
        .join(", ");
      const vad = p.vad ? ` · V ${p.vad[0].toFixed(2)} A ${p.vad[1].toFixed(2)}` : "";
      item.append(meta, cueText(u.text, p.cues && p.cues.attributions), el("div", "top", top + vad));
      for (const w of p.warnings || []) item.append(el("p", "warning", w));
      list.append(item);
    }
  }

  function renderLegend(data, colours) {
    const legend = $("legend");
    legend.replaceChildren();
    const seen = [...new Set(data.utterances.map((u) => u.prediction.label))];
    for (const label of seen) {
      const item = el("span", "legend-item");
      const sw = el("span", "swatch");
      sw.style.setProperty("background-color", colourOf(colours, label));
      item.append(sw, document.createTextNode(label));
      legend.append(item);
    }
  }

  function speakerKey(u) {
    return u.speaker || "(unknown)";
  }

  function renderTimeline(data, colours) {
    const svg = $("timeline");
    svg.replaceChildren();
    const speakers = [...new Set(data.utterances.map(speakerKey))];
    const n = data.utterances.length;
    const left = 90;
    const right = 10;
    const laneH = 56;
    const gap = 8;
    const top = 8;
    const width = 560;
    const height = top + speakers.length * (laneH + gap) + 22;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const step = (width - left - right) / Math.max(n, 1);
    const xOf = (i) => left + i * step;
    speakers.forEach((name, s) => {
      const y0 = top + s * (laneH + gap);
      svg.append(svgEl("rect", { class: "lane", x: left, y: y0, width: width - left - right,
        height: laneH }));
      svg.append(svgEl("text", { x: 4, y: y0 + laneH / 2 + 4 }, name.slice(0, 14)));
      const mid = y0 + laneH / 2;
      svg.append(svgEl("line", { class: "grid-line", x1: left, x2: width - right, y1: mid,
        y2: mid }));
      const points = [];
      for (const u of data.utterances) {
        if (speakerKey(u) !== name) continue;
        const p = u.prediction;
        const h = Math.max(3, p.confidence * (laneH - 4));
        const rect = svgEl("rect", {
          class: "turn",
          x: xOf(u.index) + step * 0.1,
          y: y0 + laneH - h,
          width: Math.max(2, step * 0.8),
          height: h,
          fill: colourOf(colours, p.label),
          "data-label": p.label,
          "data-speaker": name,
        });
        rect.append(svgEl("title", {}, `turn ${u.index + 1} · ${name}: ${p.label} ` +
          `(${p.confidence.toFixed(2)})`));
        hoverable(rect, u.index);
        svg.append(rect);
        if (p.vad) {
          const v = Math.max(-1, Math.min(1, p.vad[0]));
          points.push(`${xOf(u.index) + step / 2},${mid - v * (laneH / 2 - 3)}`);
        }
      }
      if (points.length > 1) {
        svg.append(svgEl("polyline", { class: "valence", points: points.join(" ") }));
      }
    });
    const axisY = top + speakers.length * (laneH + gap) + 12;
    const every = Math.max(1, Math.ceil(n / 20));
    for (let i = 0; i < n; i += every) {
      svg.append(svgEl("text", { x: xOf(i) + step / 2 - 3, y: axisY }, String(i + 1)));
    }
  }

  function renderScatter(data, colours) {
    const svg = $("va-plot");
    svg.replaceChildren();
    const size = 360;
    const pad = 30;
    svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
    const scale = (x) => pad + ((x + 1) / 2) * (size - 2 * pad);
    const xOf = (v) => scale(v);
    const yOf = (a) => size - scale(a);
    svg.append(svgEl("rect", { class: "lane", x: pad, y: pad, width: size - 2 * pad,
      height: size - 2 * pad }));
    svg.append(svgEl("line", { class: "axis", x1: pad, x2: size - pad, y1: yOf(0), y2: yOf(0) }));
    svg.append(svgEl("line", { class: "axis", x1: xOf(0), x2: xOf(0), y1: pad, y2: size - pad }));
    svg.append(svgEl("text", { x: size - pad - 40, y: yOf(0) - 4 }, "valence →"));
    svg.append(svgEl("text", { x: xOf(0) + 4, y: pad + 10 }, "arousal ↑"));
    for (const [text, x, y] of [
      ["tense", pad + 4, pad + 24],
      ["excited", size - pad - 44, pad + 24],
      ["sad", pad + 4, size - pad - 6],
      ["calm", size - pad - 30, size - pad - 6],
    ]) {
      svg.append(svgEl("text", { class: "quadrant", x, y }, text));
    }
    const speakers = [...new Set(data.utterances.map(speakerKey))];
    const withVad = data.utterances.filter((u) => u.prediction.vad);
    $("va-note").textContent = withVad.length
      ? "Each point is an utterance; lines join a speaker's turns in order."
      : "This recogniser predicts no valence/arousal, so there is nothing to plot.";
    speakers.forEach((name, s) => {
      const pts = withVad
        .filter((u) => speakerKey(u) === name)
        .map((u) => `${xOf(u.prediction.vad[0])},${yOf(u.prediction.vad[1])}`);
      if (pts.length > 1) {
        svg.append(svgEl("polyline", { class: "trajectory", points: pts.join(" "),
          stroke: SPEAKER_COLOURS[s % SPEAKER_COLOURS.length] }));
      }
    });
    for (const u of withVad) {
      const p = u.prediction;
      const dot = svgEl("circle", {
        class: "point",
        cx: xOf(Math.max(-1, Math.min(1, p.vad[0]))),
        cy: yOf(Math.max(-1, Math.min(1, p.vad[1]))),
        r: 6,
        fill: colourOf(colours, p.label),
        "data-label": p.label,
      });
      dot.append(svgEl("title", {}, `turn ${u.index + 1} · ${speakerKey(u)}: ${p.label}\n` +
        `valence ${p.vad[0].toFixed(2)}, arousal ${p.vad[1].toFixed(2)}`));
      hoverable(dot, u.index);
      svg.append(dot);
    }
  }

  function render(data) {
    const colours = colourMap(data.taxonomy);
    renderUtterances(data, colours);
    renderLegend(data, colours);
    renderTimeline(data, colours);
    renderScatter(data, colours);
    $("summary").textContent =
      `${data.utterances.length} utterances · ${data.speakers.length} speakers · ` +
      `recogniser ${data.recognizer} · ${data.taxonomy} labels`;
    $("results").hidden = false;
  }

  // ---------------------------------------------------------------------------------------
  // Server calls
  // ---------------------------------------------------------------------------------------

  function errorText(status, body) {
    if (body && typeof body.detail === "string") return body.detail;
    if (body && Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
    return `the server answered ${status}`;
  }

  async function loadModels() {
    try {
      const res = await fetch("/v1/models");
      if (!res.ok) throw new Error(`the server answered ${res.status}`);
      models = await res.json();
    } catch (e) {
      $("model-info").textContent = `cannot reach the emoscope API: ${e.message}`;
      document.body.dataset.state = "error";
      return;
    }
    $("model-info").textContent =
      `recogniser: ${models.recognizer.name} · up to ${models.limits.max_utterances} ` +
      `utterances of ${models.limits.max_text_chars} characters`;
    const select = $("taxonomy-select");
    select.replaceChildren();
    for (const t of models.taxonomies) {
      const opt = el("option", "", t.name);
      opt.value = t.name;
      if (t.name === models.default_taxonomy) opt.selected = true;
      select.append(opt);
    }
    document.body.dataset.state = "ready";
  }

  async function analyse() {
    let dialogue;
    try {
      dialogue = parseDialogue($("dialogue-input").value);
    } catch (e) {
      setStatus(e.message, true);
      return;
    }
    const button = $("analyse-button");
    button.disabled = true;
    document.body.dataset.state = "busy";
    setStatus(`Analysing ${dialogue.utterances.length} utterances…`);
    try {
      const explain = $("explain-check").checked ? "?explain=true" : "";
      const res = await fetch("/v1/dialogue" + explain, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...dialogue, taxonomy: $("taxonomy-select").value || null }),
      });
      const body = await res.json().catch(() => null);
      if (!res.ok) throw new Error(errorText(res.status, body));
      render(body);
      setStatus("");
      document.body.dataset.state = "done";
    } catch (e) {
      setStatus(`Could not analyse: ${e.message}`, true);
      document.body.dataset.state = "error";
    } finally {
      button.disabled = false;
    }
  }

  function readFile(file) {
    if (!file) return;
    const reader = new FileReader();
    reader.onload = () => {
      $("dialogue-input").value = String(reader.result);
      setStatus(`Loaded ${file.name}.`);
    };
    reader.onerror = () => setStatus(`Could not read ${file.name}.`, true);
    reader.readAsText(file);
  }

  function init() {
    $("sample-button").addEventListener("click", () => {
      $("dialogue-input").value = SAMPLE;
      setStatus("");
    });
    $("analyse-button").addEventListener("click", analyse);
    $("file-input").addEventListener("change", (e) => readFile(e.target.files[0]));
    const area = $("dialogue-input");
    area.addEventListener("dragover", (e) => {
      e.preventDefault();
      area.classList.add("dragover");
    });
    area.addEventListener("dragleave", () => area.classList.remove("dragover"));
    area.addEventListener("drop", (e) => {
      e.preventDefault();
      area.classList.remove("dragover");
      readFile(e.dataTransfer.files[0]);
    });
    area.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) analyse();
    });
    loadModels();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
