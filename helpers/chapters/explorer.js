// The static pruning explorer of chapter "Explore it yourself" (see helpers/chapters/explorer.py).
// Embedded inline by explorer.page_html after a <script type="application/json"> holding
// explorer.page_data(): it builds the controls, then redraws the accuracy curve, the marked
// point, the per-tensor bars and the summary from that data. Nothing is fetched.
(function () {
  "use strict";
  const root = document.currentScript.parentElement;
  const data = JSON.parse(root.querySelector("script.obd-explorer-data").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const total = data.sizes.reduce((a, b) => a + b, 0);
  const decoded = {};

  function el(tag, attrs, parent, text) {
    const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4))
                                        : document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function select(panel, name, label, options) {
    const wrap = el("label", {}, panel, label + " ");
    const box = el("select", { name: name }, wrap);
    setOptions(box, options);
    return box;
  }

  function setOptions(box, options) {
    const previous = box.value;
    box.replaceChildren();
    for (const [value, text] of options) el("option", { value: String(value) }, box, text);
    if (options.some(([value]) => String(value) === previous)) box.value = previous;
  }

  // Pruned counts per tensor and level: running sums of the stored increments.
  function pruned(key) {
    if (!(key in decoded)) {
      const table = data.tables[data.pruned[key]];
      decoded[key] = table.map(steps => {
        let sum = 0;
        return steps.map(step => (sum += step));
      });
    }
    return decoded[key];
  }

  function label(list, key) {
    return list.find(item => item[0] === key)[1];
  }

  // ---- controls
  const panel = el("div", { class: "obd-explorer-controls" }, root);
  const network = select(panel, "network", "network", data.networks.map(n => [n[0], n[1]]));
  const seed = select(panel, "seed", "seed", []);
  const method = select(panel, "method", "saliency", data.methods);
  const scope = select(panel, "scope", "scope", data.scopes);
  const sliderLabel = el("label", {}, panel, "pruned ");
  const slider = el("input", { type: "range", name: "percent", min: "0",
                               max: String(data.levels - 1), step: "1", value: "50" }, sliderLabel);
  const readout = el("output", { class: "obd-explorer-readout" }, sliderLabel);
  // Start where the Jupyter widget starts, when the data has that setting.
  for (const [box, value] of [[network, "plain"], [method, "obd"], [scope, "global"]]) {
    if (Array.from(box.options).some(option => option.value === value)) box.value = value;
  }

  const summary = el("pre", { class: "obd-explorer-summary" }, root);
  const plots = el("div", { class: "obd-explorer-plots" }, root);

  // ---- the accuracy curve (x: percent pruned 0..100, y: accuracy 0..1)
  const W = 400, H = 290, L = 48, R = 12, T = 26, B = 40;
  const cx = p => L + (W - L - R) * p / 100;
  const cy = a => T + (H - T - B) * (1 - a);
  const curveSvg = el("svg:svg", { viewBox: `0 0 ${W} ${H}`, class: "obd-explorer-curve",
                                   role: "img" }, plots);
  el("svg:text", { x: W / 2, y: 16, "text-anchor": "middle", class: "title" }, curveSvg,
     "accuracy against sparsity");
  for (let i = 0; i <= 5; i++) {
    const p = 20 * i, a = 0.2 * i;
    el("svg:line", { x1: cx(0), x2: cx(100), y1: cy(a), y2: cy(a), class: "grid" }, curveSvg);
    el("svg:line", { x1: cx(p), x2: cx(p), y1: cy(0), y2: cy(1), class: "grid" }, curveSvg);
    el("svg:text", { x: cx(p), y: cy(0) + 14, "text-anchor": "middle" }, curveSvg, `${p}`);
    el("svg:text", { x: L - 6, y: cy(a) + 4, "text-anchor": "end" }, curveSvg, a.toFixed(1));
  }
  el("svg:text", { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle" }, curveSvg,
     "% of parameters pruned");
  el("svg:text", { x: 12, y: (T + H - B) / 2, "text-anchor": "middle",
                   transform: `rotate(-90 12 ${(T + H - B) / 2})` }, curveSvg, "test accuracy");
  const line = el("svg:polyline", { class: "curve" }, curveSvg);
  const point = el("svg:circle", { r: 5, class: "obd-explorer-point" }, curveSvg);
  const pointLabel = el("svg:text", { class: "point-label" }, curveSvg);

  // ---- the share of each tensor pruned
  const bL = 40, bR = 8, bT = 26, bB = 92;
  const by = s => bT + (H - bT - bB) * (1 - s);
  const barsSvg = el("svg:svg", { viewBox: `0 0 ${W} ${H}`, class: "obd-explorer-bars",
                                  role: "img" }, plots);
  el("svg:text", { x: W / 2, y: 16, "text-anchor": "middle", class: "title" }, barsSvg,
     "share of each tensor pruned");
  for (let i = 0; i <= 4; i++) {
    el("svg:line", { x1: bL, x2: W - bR, y1: by(i / 4), y2: by(i / 4), class: "grid" }, barsSvg);
    el("svg:text", { x: bL - 5, y: by(i / 4) + 4, "text-anchor": "end" }, barsSvg, `${25 * i}%`);
  }
  const slot = (W - bL - bR) / data.tensors.length;
  const bars = data.tensors.map((name, i) => {
    const x = bL + slot * (i + 0.5);
    el("svg:text", { x: x, y: by(0) + 10, "text-anchor": "end",
                     transform: `rotate(-55 ${x} ${by(0) + 10})` }, barsSvg, name);
    const bar = el("svg:rect", { x: x - slot * 0.35, width: slot * 0.7, class: "bar" }, barsSvg);
    const value = el("svg:text", { x: x, "text-anchor": "middle", class: "bar-label" }, barsSvg);
    return { bar: bar, value: value, title: el("svg:title", {}, bar) };
  });

  function update() {
    const seeds = data.networks.find(n => n[0] === network.value)[2];
    setOptions(seed, seeds.map(s => [s, String(s)]));
    const key = `${network.value}/${seed.value}/${method.value}/${scope.value}`;
    const percent = Number(slider.value);
    const accuracy = data.accuracy[key];
    const counts = pruned(key).map(steps => steps[percent]);
    const shares = counts.map((c, i) => c / data.sizes[i]);
    const overall = counts.reduce((a, b) => a + b, 0) / total;
    const acc = accuracy[percent] / 10000;

    readout.textContent = `${percent}%`;
    const vertices = accuracy.map((a, p) => `${cx(p).toFixed(1)},${cy(a / 10000).toFixed(1)}`);
    line.setAttribute("points", vertices.join(" "));
    point.setAttribute("cx", cx(percent).toFixed(1));
    point.setAttribute("cy", cy(acc).toFixed(1));
    point.dataset.percent = String(percent);
    point.dataset.accuracy = acc.toFixed(4);
    pointLabel.setAttribute("x", (cx(percent) + (percent > 60 ? -8 : 8)).toFixed(1));
    pointLabel.setAttribute("y", (cy(acc) + (acc > 0.5 ? 18 : -10)).toFixed(1));
    pointLabel.setAttribute("text-anchor", percent > 60 ? "end" : "start");
    pointLabel.textContent = `${percent}%: ${acc.toFixed(4)}`;
    bars.forEach((b, i) => {
      b.bar.setAttribute("y", by(shares[i]).toFixed(1));
      b.bar.setAttribute("height", (by(0) - by(shares[i])).toFixed(1));
      b.bar.dataset.share = shares[i].toFixed(4);
      b.title.textContent = `${data.tensors[i]}: ${counts[i]} of ${data.sizes[i]} pruned`;
      b.value.setAttribute("y", (by(shares[i]) - 3).toFixed(1));
      b.value.textContent = `${(100 * shares[i]).toFixed(0)}`;
    });
    const layers = new Map();  // "hidden1" -> ["kernel 55%", "bias 4%"], as summary_text groups them
    data.tensors.forEach((name, i) => {
      const [layer, weight] = [name.slice(0, name.indexOf(" ")), name.slice(name.indexOf(" ") + 1)];
      if (!layers.has(layer)) layers.set(layer, []);
      layers.get(layer).push(`${weight} ${(100 * shares[i]).toFixed(0)}%`);
    });
    const chunks = Array.from(layers, ([layer, parts]) => `${layer} ${parts.join(", ")}`);
    const lines = [
      `${label(data.networks, network.value)}, seed ${seed.value}`,
      `${label(data.methods, method.value)}, ${label(data.scopes, scope.value)}`,
      `${(100 * overall).toFixed(1)}% of parameters pruned: test accuracy ${acc.toFixed(4)}`,
      "pruned per tensor:",
    ];
    for (let i = 0; i < chunks.length; i += 2) lines.push("  " + chunks.slice(i, i + 2).join("; "));
    summary.textContent = lines.join("\n");
  }

  for (const control of [network, seed, method, scope]) control.addEventListener("change", update);
  slider.addEventListener("input", update);
  update();
})();
