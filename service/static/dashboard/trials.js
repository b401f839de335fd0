// A search's (or k-fold job's) trial table: each trial's `rank` as the API
// gives it (models/training/search/ranking.py), never ranked here; a header
// click sorts by that column, the best trial is marked, and a row hovered or
// clicked picks out its curve. A trial still training shows its latest values
// from the history (`"<trial>:<metric>"`).

import { $, element, number, state } from "./page.js";

const TRIAL_DONE = new Set(["succeeded", "stopped", "failed"]);
const TRIAL_KEY = /^(\d+):([^:]+)$/; // "<trial>:<metric>": not a fold's, not the refit's

export function hasTrials(job) {
  const fit = (job.spec && job.spec.fit) || {};
  return Boolean(job.search || (job.trials && job.trials.length) || fit.folds);
}

export function rankingOf(job) {
  const ranking = job.ranking || {};
  const search = job.search || {};
  return {
    metric: ranking.metric || search.metric || "val_loss",
    mode: ranking.mode || search.mode || "min",
  };
}

// The record's trials, those still training with their latest values from
// the history (the record is written once per group), by index. Their rank
// stays the record's until the listing brings the group's results.
export function trialsOf(job) {
  const live = new Map();
  for (const [key, values] of Object.entries(job.history || {})) {
    const match = TRIAL_KEY.exec(key);
    if (!match || !values.length) continue;
    const index = Number(match[1]);
    const seen = live.get(index) || { metrics: {}, epochs: 0 };
    seen.metrics[match[2]] = values[values.length - 1];
    seen.epochs = Math.max(seen.epochs, values.length);
    live.set(index, seen);
  }
  const recorded = Array.isArray(job.trials) ? job.trials : [];
  const trials = recorded.map((trial) => {
    const seen = live.get(trial.index);
    live.delete(trial.index);
    if (!seen || TRIAL_DONE.has(trial.state)) return trial;
    return {
      ...trial, metrics: { ...trial.metrics, ...seen.metrics },
      epochs: Math.max(trial.epochs || 0, seen.epochs),
      state: trial.state === "queued" ? "running" : trial.state,
    };
  });
  for (const [index, seen] of live) {
    trials.push({ index, params: {}, state: "running", ...seen });
  }
  return trials.sort((a, b) => a.index - b.index);
}

// A dotted path's last segment, or as many more as tell it from the others.
function shortLabels(paths) {
  const labels = {};
  for (const path of paths) {
    const parts = path.split(".");
    let label = path;
    for (let size = 1; size <= parts.length; size += 1) {
      label = parts.slice(-size).join(".");
      const clashes = (other) => other !== path && (other === label || other.endsWith(`.${label}`));
      if (!paths.some(clashes)) break;
    }
    labels[path] = label;
  }
  return labels;
}

export function trialColor(index) {
  return `hsl(${Math.round((index * 137.508) % 360)} 62% 42%)`;
}

function paramText(value) {
  if (value === undefined) return "–";
  if (typeof value === "number") return number(value);
  return typeof value === "string" ? value : JSON.stringify(value);
}

function measure(trial, name) {
  const summary = (trial.folds || {})[name];
  if (summary) {
    return {
      value: summary.mean, text: `${number(summary.mean)} ± ${number(summary.std)}`,
      title: `${name} per fold: ${(summary.values || []).map(number).join(", ")}`,
    };
  }
  const value = (trial.metrics || {})[name];
  return { value, text: value === undefined || value === null ? "–" : number(value), title: "" };
}

function trialColumns(trials, metric, mode) {
  const paths = [...new Set(trials.flatMap((trial) => Object.keys(trial.params || {})))].sort();
  const labels = shortLabels(paths);
  const others = [...new Set(trials.flatMap((trial) => Object.keys(trial.metrics || {})))]
    .filter((name) => name !== metric)
    .sort((a, b) => a.replace(/^val_/, "").localeCompare(b.replace(/^val_/, "")) ||
      a.localeCompare(b));
  const order = mode === "max" ? "highest" : "lowest";
  return [
    { key: "rank", label: "rank", title: `Rank by ${metric}, ${order} first`, numeric: true,
      value: (trial) => trial.rank, text: (trial) => String(trial.rank ?? "–") },
    { key: "trial", label: "trial", title: "The trial's index", numeric: true,
      value: (trial) => trial.index, text: (trial) => String(trial.index) },
    ...paths.map((path) => ({
      key: `param:${path}`, label: labels[path], title: path,
      numeric: trials.every((trial) =>
        ["number", "undefined"].includes(typeof (trial.params || {})[path])),
      value: (trial) => (trial.params || {})[path],
      text: (trial) => paramText((trial.params || {})[path]),
    })),
    ...[metric, ...others].map((name) => ({
      key: `metric:${name}`, label: name, numeric: true,
      title: name === metric ? `${name}: the ranking metric, ${order} first` : name,
      value: (trial) => measure(trial, name).value, text: (trial) => measure(trial, name).text,
      cellTitle: (trial) => measure(trial, name).title,
    })),
    { key: "state", label: "state", title: "stopped: halted at a halving rung",
      value: (trial) => trial.state, text: (trial) => trial.state || "" },
    { key: "epochs", label: "epochs", title: "Epochs the trial trained", numeric: true,
      value: (trial) => trial.epochs, text: (trial) => String(trial.epochs ?? 0) },
  ];
}

// Missing values (and NaN) last whichever the direction; numbers before text.
function compareCells(a, b, descending) {
  const missing = (value) => value === undefined || value === null || Number.isNaN(value);
  if (missing(a) || missing(b)) return Number(missing(a)) - Number(missing(b));
  const sign = descending ? -1 : 1;
  if (typeof a === "number" && typeof b === "number") return sign * (a - b);
  if (typeof a === "number") return -1;
  if (typeof b === "number") return 1;
  return sign * String(a).localeCompare(String(b), undefined, { numeric: true });
}

export function renderTrials(job, trials) {
  const { metric, mode } = rankingOf(job);
  const best = job.best ? job.best.index : null;
  const sort = state.trialSort;
  // Redrawn only when something shown changed: a row under the pointer stays put.
  const drawn = JSON.stringify([trials, metric, mode, best, sort]);
  if (drawn === state.trialsDrawn) return;
  state.trialsDrawn = drawn;

  const columns = trialColumns(trials, metric, mode);
  const column = columns.find((each) => each.key === sort.key) || columns[0];
  const byRank = (a, b) =>
    compareCells(a.rank, b.rank, false) || a.index - b.index;
  const rows = [...trials].sort((a, b) =>
    compareCells(column.value(a), column.value(b), sort.descending) || byRank(a, b));

  const folds = trials.some((trial) => trial.folds);
  $("trials-summary").textContent =
    `${trials.length} trial${trials.length === 1 ? "" : "s"} · ranked by ${metric}` +
    `${folds ? " (mean ± std over the folds)" : ""}, ${mode === "max" ? "highest" : "lowest"} first` +
    (best !== null ? ` · best: trial ${best}` : "");
  $("trials-head").replaceChildren(...columns.map((each) => {
    const sorted = each.key === column.key;
    const header = element("th", {
      scope: "col", title: each.title || each.label, "data-key": each.key,
      "aria-sort": sorted ? (sort.descending ? "descending" : "ascending") : "none",
      class: each.numeric ? "numeric" : "",
    });
    const button = element("button", { type: "button", class: "sort", "data-testid": "trial-sort",
      "data-key": each.key }, each.label);
    button.addEventListener("click", () => {
      state.trialSort = { key: each.key, descending: sorted ? !sort.descending : false };
      renderTrials(state.job, trialsOf(state.job));
      emphasizeTrial();
    });
    header.append(button);
    return header;
  }));
  $("trials-body").replaceChildren(...rows.map((trial) => {
    const row = element("tr", {
      "data-testid": "trial-row", "data-trial": String(trial.index), "data-state": trial.state || "",
      "data-rank": String(trial.rank ?? ""), tabindex: "0",
      class: trial.index === best ? "best" : "",
    });
    for (const each of columns) {
      const cell = element("td", { class: each.numeric ? "numeric" : "", "data-key": each.key },
        each.text(trial));
      // A parameter's cell may be cut short: its title holds all of it.
      const title = each.cellTitle ? each.cellTitle(trial)
        : each.key.startsWith("param:") ? cell.textContent : "";
      if (title) cell.title = title;
      if (each.key === "rank" && trial.index === best) {
        const badge = element("span", { class: "badge succeeded", "data-testid": "best-trial" }, "best");
        cell.append(" ", badge);
      }
      if (each.key === "trial") {
        const swatch = element("span", { class: "trial-swatch", "aria-hidden": "true" });
        swatch.style.borderTopColor = trialColor(trial.index);
        cell.prepend(swatch);
      }
      row.append(cell);
    }
    const pin = () => {
      state.pinnedTrial = state.pinnedTrial === trial.index ? null : trial.index;
      emphasizeTrial();
    };
    row.addEventListener("mouseenter", () => emphasizeTrial(trial.index));
    row.addEventListener("click", pin);
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        pin();
      }
    });
    return row;
  }));
}

// Picks out one trial's curve (and row): the one hovered, else the one clicked.
export function emphasizeTrial(hovered) {
  if (hovered !== undefined) state.hoveredTrial = hovered;
  const chosen = state.hoveredTrial ?? state.pinnedTrial;
  const svg = document.querySelector('#curves [data-testid="chart-trials"] svg');
  if (svg) svg.classList.toggle("focused", chosen !== null);
  for (const group of document.querySelectorAll("#curves g.trial")) {
    group.classList.toggle("emphasized", group.dataset.trial === String(chosen));
  }
  for (const row of document.querySelectorAll("#trials-body tr")) {
    row.classList.toggle("emphasized", row.dataset.trial === String(chosen));
    row.setAttribute("aria-selected", String(row.dataset.trial === String(state.pinnedTrial)));
  }
}
