// The curves of the selected job, as SVG charts: a plain job's metrics (train
// and validation per chart), or a search's one chart with every trial's
// curve of the ranking metric (a lone k-fold trial with each fold's).

import { $, element, number, state, SVG } from "./page.js";
import { rankingOf, trialColor } from "./trials.js";

export function drawCurves(job) {
  const history = job.history || {};
  const names = Object.keys(history).filter((name) => !name.startsWith("val_"));
  names.sort((a, b) => (a === "loss" ? -1 : b === "loss" ? 1 : a.localeCompare(b)));
  const points = (history.loss || []).filter((value) => value !== undefined).length;
  const epochs = Math.max((job.progress && job.progress.epochs) || 0, points);
  const curves = $("curves");
  curves.replaceChildren(...names.map((name) => chart(name, history, epochs)));
  curves.dataset.points = String(points);
  curves.dataset.epochs = String(epochs);
  curves.dataset.epochEvents = String(state.epochEvents);
  if (state.pointHistory[state.pointHistory.length - 1] !== points) {
    state.pointHistory.push(points);
  }
  curves.dataset.pointHistory = state.pointHistory.join(",");
}

// A chart's figure, title and axes, scaled to every value in `lists` over
// `epochs`; `line(list, attributes, parent)` draws one series on it. A chart
// alone in its row is drawn wider, so that its text keeps its size.
function chartFrame(name, lists, epochs, description, heading = name, width = 340) {
  const height = 190;
  const box = { left: 46, right: 10, top: 10, bottom: 26 };
  const plotWidth = width - box.left - box.right;
  const plotHeight = height - box.top - box.bottom;
  const values = lists.flat().filter(Number.isFinite);
  let low = values.length ? Math.min(...values) : 0;
  let high = values.length ? Math.max(...values) : 1;
  if (high - low < 1e-12) {
    const pad = Math.abs(high) * 0.1 || 1;
    low -= pad;
    high += pad;
  }
  const x = (epoch) => box.left + ((epoch - 1) / Math.max(epochs - 1, 1)) * plotWidth;
  const y = (value) => box.top + (1 - (value - low) / (high - low)) * plotHeight;

  const figure = element("figure", { class: "chart", "data-testid": `chart-${name}` });
  figure.style.margin = "0";
  const title = element("h3", {}, heading);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", description);
  const add = (tag, attributes, text, parent = svg) => {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    parent.append(node);
    return node;
  };
  for (const value of [low, (low + high) / 2, high]) {
    add("line", { class: "grid-line", x1: box.left, x2: width - box.right, y1: y(value), y2: y(value) });
    add("text", { class: "tick", x: box.left - 4, y: y(value) + 3, "text-anchor": "end" }, number(value));
  }
  add("line", { class: "axis", x1: box.left, x2: box.left, y1: box.top, y2: height - box.bottom });
  add("line", { class: "axis", x1: box.left, x2: width - box.right,
                y1: height - box.bottom, y2: height - box.bottom });
  const ticks = [...new Set([1, Math.ceil(epochs / 2), Math.max(epochs, 1)])];
  for (const epoch of ticks) {
    const anchor = epoch === 1 ? "start" : epoch === epochs ? "end" : "middle";
    add("text", { class: "tick", x: x(epoch), y: height - box.bottom + 14, "text-anchor": anchor },
        String(epoch));
  }
  const line = (list, attributes, parent = svg) => {
    const drawn = list
      .map((value, index) => [index + 1, value])
      .filter(([, value]) => Number.isFinite(value));
    const coordinates = drawn.map(([epoch, value]) => `${x(epoch).toFixed(1)},${y(value).toFixed(1)}`);
    const points = coordinates.join(" ");
    add("polyline", { ...attributes, points, "data-points": String(drawn.length) }, undefined, parent);
    if (drawn.length) {
      const [epoch, value] = drawn[drawn.length - 1];
      const dot = { class: attributes.class, cx: x(epoch), cy: y(value), r: 2.2 };
      add("circle", dot, undefined, parent);
    }
  };
  figure.append(title, svg);
  return { figure, svg, line };
}

function chart(name, history, epochs) {
  const series = [["train", history[name] || []], ["val", history[`val_${name}`] || []]]
    .filter(([, values]) => values.length > 0);
  const { figure, line } = chartFrame(name, series.map(([, list]) => list), epochs,
    `${name} per epoch, train and validation`);
  for (const [kind, list] of series) {
    line(list, { class: `series ${kind}`, "data-testid": `series-${kind}` });
  }
  const legend = element("div", { class: "legend" });
  for (const [kind, list] of series) {
    const latest = list[list.length - 1];
    const label = element("span");
    label.append(element("span", { class: `swatch ${kind}` }),
      `${kind === "val" ? `val_${name}` : name} ${number(latest)}`);
    legend.append(label);
  }
  figure.dataset.points = String((history[name] || []).length);
  figure.append(legend);
  return figure;
}

// Every trial's curve of the ranking metric in one chart, the best drawn
// last and thicker; a lone trial (k-fold without a search) with each fold's.
export function drawTrialCurves(job, trials) {
  const { metric } = rankingOf(job);
  const history = job.history || {};
  const leader = job.best ? job.best.index : trials.find((trial) => trial.rank === 1)?.index;
  const series = trials.map((trial) => ({
    trial: trial.index, values: history[`${trial.index}:${metric}`] || [],
  }));
  series.sort((a, b) => Number(a.trial === leader) - Number(b.trial === leader));
  const folds = trials.length === 1
    ? Object.keys(history)
      .filter((key) => key.startsWith(`${trials[0].index}:f`) && key.endsWith(`:${metric}`))
      .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))
    : [];
  const points = Math.max(0, ...series.map(({ values }) => values.length));
  const planned = (job.spec && job.spec.fit && job.spec.fit.epochs) || 0;
  const epochs = Math.max(planned, points, ...trials.map((trial) => trial.epochs || 0));
  const { figure, svg, line } = chartFrame("trials",
    [...series.map(({ values }) => values), ...folds.map((key) => history[key])], epochs,
    `${metric} per epoch, one line per trial`,
    folds.length ? `${metric}: each fold and their mean` : `${metric} by trial`, 680);
  for (const key of folds) {
    const group = document.createElementNS(SVG, "g");
    group.setAttribute("class", "fold");
    group.setAttribute("data-fold", key.split(":")[1]);
    svg.append(group);
    line(history[key], { class: "series fold", "data-testid": "fold-curve" }, group);
  }
  for (const { trial, values } of series) {
    const group = document.createElementNS(SVG, "g");
    group.setAttribute("class", `trial${trial === leader ? " best" : ""}`);
    group.setAttribute("data-trial", String(trial));
    group.style.stroke = trialColor(trial);
    svg.append(group);
    line(values, { class: "series trial", "data-testid": "trial-curve", "data-trial": `${trial}` },
      group);
  }
  const legend = element("div", { class: "legend" });
  if (leader !== undefined && leader !== null) {
    const label = element("span");
    const swatch = element("span", { class: "swatch trial-best" });
    swatch.style.borderTopColor = trialColor(leader);
    const latest = (history[`${leader}:${metric}`] || []).slice(-1)[0];
    label.append(swatch, `trial ${leader} (${job.best ? "best" : "leading"})` +
      (latest === undefined ? "" : ` ${number(latest)}`));
    legend.append(label);
  }
  legend.append(element("span", {}, folds.length
    ? `thin: each of ${folds.length} folds; thick: their mean`
    : `${series.length} trials · hover a row to pick out its curve`));
  figure.append(legend);
  figure.dataset.points = String(points);

  const curves = $("curves");
  curves.replaceChildren(figure);
  curves.dataset.points = String(points);
  curves.dataset.epochs = String(epochs);
  curves.dataset.epochEvents = String(state.epochEvents);
  if (state.pointHistory[state.pointHistory.length - 1] !== points) state.pointHistory.push(points);
  curves.dataset.pointHistory = state.pointHistory.join(",");
}
