// The fitserve dashboard: plain DOM and fetch(), no framework and no build step.
//
// Every API call sends the key kept in localStorage. A job's curves come from
// GET /v1/jobs/{id}/events, read with fetch() because EventSource cannot send
// an Authorization header: `snapshot` (the whole record), one `epoch` per
// epoch, then `state` events; the stream ends after a final state, and is
// read again (a fresh snapshot) if it ends before one. The page opens on the
// newest job (its newest training job, if any).
//
// A search or k-fold job (one with `trials`) shows its trials instead: a
// table ranked by the job's ranking metric (a header click sorts by that
// column), the best trial marked, and one chart with every trial's curve of
// that metric (`history["<trial>:<metric>"]`); a row hovered or clicked picks
// its curve out. Its epoch events are history entries (`epoch`, `group`, each
// running trial's `"<trial>:<metric>"`): appended, each once.
//
// The models panel shows each version's labels, moves a label (PUT
// /v1/models/{name}/labels/{label}), and downloads exports: fetched with the
// key as a blob, then saved through an object URL (a plain link cannot send
// the Authorization header).
"use strict";

(() => {
  const KEY_STORAGE = "fitserve.apiKey";
  const FINAL_STATES = new Set(["succeeded", "failed", "cancelled"]);
  const JOBS_EVERY_MS = 2000;
  const MODELS_EVERY_MS = 10000;
  const RECONNECT_MS = 1000;
  const EXPORT_FORMATS = [
    { format: "keras", title: "Keras", extension: "keras" },
    { format: "saved_model", title: "SavedModel", extension: "zip" },
    { format: "onnx", title: "ONNX", extension: "onnx" },
  ];
  const SVG = "http://www.w3.org/2000/svg";
  const EXAMPLE_SPEC = {
    input_shape: [4],
    layers: [
      { type: "dense", units: 16, activation: "relu" },
      { type: "dense", units: 3, activation: "softmax" },
    ],
    compile: { loss: "categorical_crossentropy", optimizer: "adam", metrics: ["accuracy"] },
    fit: { epochs: 50, batch_size: 5, validation_split: 0.2 },
    seed: 7,
  };

  const $ = (id) => document.getElementById(id);
  const state = {
    key: localStorage.getItem(KEY_STORAGE) || "",
    job: null, // the selected job's record, kept current by its event stream
    jobId: null,
    stream: null, // the AbortController of the stream being read
    epochEvents: 0,
    pointHistory: [], // how many points the curves had at each redraw
    renderPending: false,
    model: null,
    metadata: null,
    models: new Map(), // name -> its entry in GET /v1/models
    labels: {}, // the selected model's labels: label -> version
    versionsDrawn: "", // what the versions table shows (name, versions, labels)
    trialSort: { key: "rank", descending: false }, // the trials table's order
    trialsDrawn: "", // what the trials table shows (its trials, ranking and order)
    hoveredTrial: null, // the trial whose row the pointer is on
    pinnedTrial: null, // the trial whose row was clicked: its curve stays picked out
  };

  // ---- HTTP -------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      const error = (body && body.error) || {};
      const details = (error.details || [])
        .filter((detail) => detail.msg && !(error.message || "").includes(detail.msg))
        .map((detail) => `${(detail.loc || []).join(".")}: ${detail.msg}`);
      super([error.message || `HTTP ${status}`, ...details].join("\n"));
      this.status = status;
    }
  }

  function authHeaders(extra) {
    const headers = new Headers(extra || {});
    if (state.key) headers.set("Authorization", `Bearer ${state.key}`);
    return headers;
  }

  async function api(path, options = {}) {
    let response;
    try {
      response = await fetch(path, { ...options, headers: authHeaders(options.headers) });
    } catch (error) {
      setConnection("error", "Server unreachable");
      throw error;
    }
    const text = await response.text();
    let body = null;
    if ((response.headers.get("Content-Type") || "").includes("json") && text) {
      body = JSON.parse(text);
    }
    if (response.status === 401) setConnection("error", "Key rejected (401)");
    else setConnection("ok", "Connected");
    if (!response.ok) throw new ApiError(response.status, body);
    return { body, response };
  }

  function setConnection(name, text) {
    const element = $("connection");
    element.dataset.state = name;
    element.textContent = text;
  }

  // ---- formatting -------------------------------------------------------

  function percent(fraction) {
    return Math.round(Math.max(0, Math.min(1, fraction || 0)) * 100);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  }

  function number(value) {
    if (typeof value !== "number") return String(value);
    return Math.abs(value) >= 1e4 || (value !== 0 && Math.abs(value) < 1e-3)
      ? value.toExponential(2)
      : String(Number(value.toPrecision(4)));
  }

  function clock(iso) {
    return iso ? new Date(iso).toLocaleTimeString() : "";
  }

  function progressOf(job) {
    const progress = job.progress || {};
    const fraction = job.state === "succeeded" ? 1 : progress.fraction || 0;
    const parts = [`${percent(fraction)}%`];
    if (progress.epochs) parts.unshift(`epoch ${progress.epoch || 0}/${progress.epochs}`);
    if (job.state === "running" && progress.eta_s !== null && progress.eta_s !== undefined) {
      parts.push(`ETA ${duration(progress.eta_s)}`);
    }
    return { fraction, text: parts.join(" · ") };
  }

  function paintProgress(bar, job) {
    const { fraction, text } = progressOf(job);
    bar.dataset.fraction = String(fraction);
    bar.dataset.state = job.state;
    bar.setAttribute("aria-valuenow", String(percent(fraction)));
    bar.setAttribute("aria-valuetext", text);
    bar.firstElementChild.style.width = `${percent(fraction)}%`;
    return text;
  }

  function element(tag, attributes = {}, text = "") {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text) node.textContent = text;
    return node;
  }

  function showError(id, error) {
    const node = $(id);
    node.hidden = !error;
    node.textContent = error ? error.message || String(error) : "";
  }

  // ---- jobs list --------------------------------------------------------

  async function refreshJobs() {
    const { body } = await api("/v1/jobs?limit=25");
    const rows = $("jobs");
    rows.replaceChildren(...body.jobs.map(jobRow));
    $("jobs-empty").hidden = body.jobs.length > 0;
    // The event stream carries no `trials` after its snapshot: the listing,
    // polled anyway, says where each trial stands after every group.
    const listed = body.jobs.find((job) => job.id === state.jobId);
    if (listed && state.job && listed.trials && !FINAL_STATES.has(state.job.state)) {
      Object.assign(state.job, { trials: listed.trials, best: listed.best, ranking: listed.ranking });
      scheduleRender();
    }
    // Nothing selected yet (the page just opened): the newest job's curves.
    if (!state.jobId && body.jobs.length) {
      const newest = body.jobs.find((job) => (job.kind || "train") === "train") || body.jobs[0];
      selectJob(newest.id);
    }
  }

  function jobRow(job) {
    const selected = job.id === state.jobId;
    const row = element("tr", {
      "data-testid": "job-row", "data-job-id": job.id, "data-state": job.state,
      tabindex: "0", "aria-selected": String(selected),
    });
    const name = element("td", {}, job.model);
    name.append(element("div", { class: "hint" }, `${job.kind} ${job.id.slice(0, 8)}`));
    const stateCell = element("td");
    stateCell.append(element("span", { class: `badge ${job.state}` }, job.state));
    const progressCell = element("td");
    const bar = element("div", {
      class: "progress", role: "progressbar", "data-testid": "job-row-progress",
      "aria-label": `Progress of job ${job.id}`, "aria-valuemin": "0", "aria-valuemax": "100",
    });
    bar.append(element("div", { class: "bar" }));
    const text = paintProgress(bar, job);
    progressCell.append(bar, element("p", { class: "progress-text" }, text));
    row.append(name, stateCell, progressCell, element("td", { class: "when" }, clock(job.created_at)));
    row.addEventListener("click", () => selectJob(job.id));
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") selectJob(job.id);
    });
    return row;
  }

  // ---- one job: its event stream and curves -------------------------------

  function selectJob(jobId) {
    if (state.stream) state.stream.abort();
    Object.assign(state, {
      jobId, job: null, epochEvents: 0, pointHistory: [], trialsDrawn: "", hoveredTrial: null,
      pinnedTrial: null,
    });
    for (const row of document.querySelectorAll("#jobs tr")) {
      row.setAttribute("aria-selected", String(row.dataset.jobId === jobId));
    }
    const detail = $("job-detail");
    detail.dataset.jobId = jobId;
    detail.dataset.state = "";
    $("curves").replaceChildren();
    $("trials").hidden = true;
    $("trials-body").replaceChildren();
    showError("job-error", null);
    $("job-summary").textContent = `Job ${jobId}: connecting…`;
    const controller = new AbortController();
    state.stream = controller;
    follow(jobId, controller.signal);
  }

  async function follow(jobId, signal) {
    while (!signal.aborted) {
      try {
        const response = await fetch(`/v1/jobs/${encodeURIComponent(jobId)}/events`, {
          headers: authHeaders({ Accept: "text/event-stream" }),
          signal,
          cache: "no-store",
        });
        if (!response.ok) {
          const body = await response.json().catch(() => null);
          const error = new ApiError(response.status, body);
          if (response.status < 500) return showError("job-error", error);
          throw error;
        }
        await readEvents(response.body, (name, data) => onJobEvent(jobId, name, data));
      } catch (error) {
        if (signal.aborted) return;
        console.warn("job stream interrupted", error);
      }
      if (signal.aborted || (state.job && FINAL_STATES.has(state.job.state))) return;
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
  }

  // Server-Sent Events, parsed by hand: blocks split by a blank line, each
  // line `field: value`; lines starting with ':' are comments (keep-alives).
  async function readEvents(body, dispatch) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") name = text;
          else if (field === "data") data.push(text);
        }
        if (data.length) dispatch(name, JSON.parse(data.join("\n")));
      }
    }
  }

  function onJobEvent(jobId, name, data) {
    if (jobId !== state.jobId) return;
    if (name === "snapshot") {
      state.job = data;
      state.job.history = state.job.history || {};
    } else if (name === "epoch" && state.job) {
      const history = state.job.history;
      const logs = data.logs || {};
      if ("group" in logs) {
        // A trials job's entry: its keys are not in every entry, so each list
        // grows by appending. Entries the snapshot already held (a stream
        // read again sends them again) are skipped.
        if (data.epoch > (history.epoch || []).length) {
          for (const [key, value] of Object.entries(logs)) {
            (history[key] = history[key] || []).push(value);
          }
        }
      } else {
        for (const [metric, value] of Object.entries(logs)) {
          (history[metric] = history[metric] || [])[data.epoch - 1] = value;
        }
      }
      state.job.progress = {
        epoch: data.epoch, epochs: data.epochs, fraction: data.fraction, eta_s: data.eta_s,
      };
      state.job.metrics = data.logs;
      state.epochEvents += 1;
    } else if (name === "state" && state.job) {
      Object.assign(state.job, data);
      if (FINAL_STATES.has(data.state)) finished(jobId);
    }
    scheduleRender();
  }

  async function finished(jobId) {
    // The final record: progress as the worker left it (early stopping included).
    try {
      const { body } = await api(`/v1/jobs/${encodeURIComponent(jobId)}`);
      if (jobId === state.jobId) {
        state.job = { ...body, history: { ...state.job.history, ...body.history } };
        scheduleRender();
      }
      refreshJobs().catch(() => {});
      if (body.state === "succeeded") loadModels().catch(() => {});
    } catch (error) {
      console.warn(error);
    }
  }

  function scheduleRender() {
    // Several epochs can arrive in one read: draw them together.
    if (state.renderPending) return;
    state.renderPending = true;
    setTimeout(() => {
      state.renderPending = false;
      renderJob();
    }, 30);
  }

  function renderJob() {
    const job = state.job;
    if (!job) return;
    const detail = $("job-detail");
    detail.dataset.state = job.state;
    const badge = $("job-state");
    badge.className = `badge ${job.state}`;
    badge.textContent = job.state;
    $("job-cancel").hidden = FINAL_STATES.has(job.state);
    // Where it ran; or, not started, the queue it waits on (a GPU job waits
    // there until a GPU worker is online).
    const where = job.device
      ? [job.device, job.worker].filter(Boolean).join(" on ")
      : job.state === "queued" && job.queue ? `waits on ${job.queue}` : "";
    $("job-summary").textContent =
      `${job.kind || "train"} job ${job.id} · model ${job.model}` +
      (job.parent ? ` · group ${job.group} of search ${job.parent}` : "") +
      (job.result && job.result.version != null ? ` · published version ${job.result.version}` : "") +
      (where ? ` · ${where}` : "") +
      (job.attempts > 1 ? ` · attempt ${job.attempts}` : "");
    $("job-summary").classList.remove("empty");
    $("job-progress-text").textContent = paintProgress($("job-progress"), job);
    showError("job-error", job.error ? new Error(`${job.error.code}: ${job.error.message}`) : null);
    const trials = hasTrials(job) ? trialsOf(job) : [];
    $("trials").hidden = !trials.length;
    if (trials.length) {
      drawTrialCurves(job, trials);
      renderTrials(job, trials);
      emphasizeTrial();
    } else {
      drawCurves(job);
    }
  }

  function drawCurves(job) {
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

  // ---- a search's (or k-fold job's) trials ----------------------------------

  const TRIAL_DONE = new Set(["succeeded", "stopped", "failed"]);
  const TRIAL_KEY = /^(\d+):([^:]+)$/; // "<trial>:<metric>": not a fold's, not the refit's

  function hasTrials(job) {
    const fit = (job.spec && job.spec.fit) || {};
    return Boolean(job.search || (job.trials && job.trials.length) || fit.folds);
  }

  function rankingOf(job) {
    const ranking = job.ranking || {};
    const search = job.search || {};
    return {
      metric: ranking.metric || search.metric || "val_loss",
      mode: ranking.mode || search.mode || "min",
    };
  }

  // The record's trials, those still training with their latest values from
  // the history (the record is written once per group), by index.
  function trialsOf(job) {
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

  function trialColor(index) {
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

  // Each trial's `rank` is the API's (models/training/search/ranking.py): shown as it is.
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

  function renderTrials(job, trials) {
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
  function emphasizeTrial(hovered) {
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

  // Every trial's curve of the ranking metric in one chart, the best drawn
  // last and thicker; a lone trial (k-fold without a search) with each fold's.
  function drawTrialCurves(job, trials) {
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

  async function cancelJob() {
    if (!state.jobId) return;
    try {
      await api(`/v1/jobs/${encodeURIComponent(state.jobId)}:cancel`, { method: "POST" });
      refreshJobs().catch(() => {});
    } catch (error) {
      showError("job-error", error);
    }
  }

  // ---- models and prediction ------------------------------------------------

  async function loadModels() {
    const { body } = await api("/v1/models");
    state.models = new Map(body.models.map((model) => [model.name, model]));
    const list = $("models");
    list.replaceChildren(...body.models.map((model) => {
      const item = element("li", {
        "data-testid": "model-row", "data-model": model.name, tabindex: "0",
        "aria-selected": String(model.name === state.model),
      });
      item.append(
        element("span", { class: "name" }, model.name),
        element("span", { class: "badge" }, model.task),
        element("span", { class: "meta" },
          `latest v${model.latest_version} · versions ${model.versions.join(", ")}`),
        ...labelChips(model.labels || {}),
      );
      item.addEventListener("click", () => selectModel(model.name));
      item.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") selectModel(model.name);
      });
      return item;
    }));
    $("models-empty").hidden = body.models.length > 0;
    // The open model's versions and labels, as they are now (moved elsewhere too).
    if (state.model && state.models.has(state.model) && !$("model-detail").hidden) {
      if (state.models.get(state.model).labels) state.labels = state.models.get(state.model).labels;
      renderVersions(state.model);
    }
  }

  function labelChips(labels, version) {
    return Object.entries(labels)
      .filter(([, target]) => version === undefined || target === version)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([label, target]) => element("span", {
        class: "label-chip", "data-testid": "model-label", "data-label": label,
        "data-version": String(target),
      }, version === undefined ? `${label} → v${target}` : label));
  }

  async function selectModel(name) {
    state.model = name;
    state.labels = {};
    for (const item of document.querySelectorAll("#models li")) {
      item.setAttribute("aria-selected", String(item.dataset.model === name));
    }
    try {
      const { body } = await api(`/v1/models/${encodeURIComponent(name)}/metadata`);
      if (state.model !== name) return;
      state.metadata = { ...body.metadata, version: body.model_spec.version };
      renderModel(name, state.metadata);
      await loadLabels(name);
    } catch (error) {
      showError("predict-error", error);
    }
  }

  // ---- versions: labels and exports -----------------------------------------

  async function loadLabels(name) {
    try {
      const { body } = await api(`/v1/models/${encodeURIComponent(name)}/labels`);
      if (state.model !== name) return;
      state.labels = body.labels || {};
      showError("label-error", null);
    } catch (error) {
      const entry = state.models.get(name);
      state.labels = (entry && entry.labels) || {};
      showError("label-error", error);
    }
    renderVersions(name);
  }

  function renderVersions(name) {
    const entry = state.models.get(name);
    const versions = entry ? [...entry.versions].sort((a, b) => b - a) : [];
    // Redrawn only when something changed: a button being clicked stays in place.
    const drawn = JSON.stringify([name, versions, state.labels]);
    if (drawn === state.versionsDrawn) return;
    state.versionsDrawn = drawn;
    $("model-versions").replaceChildren(...versions.map((version) => {
      const row = element("tr", { "data-testid": "version-row", "data-version": String(version) });
      const labels = element("td");
      labels.append(...labelChips(state.labels, version));
      const downloads = element("td", { class: "downloads" });
      for (const { format, title } of EXPORT_FORMATS) {
        const button = element("button", {
          type: "button", class: "secondary", "data-testid": "export-button",
          "data-version": String(version), "data-format": format,
          "aria-label": `Download version ${version} as ${title}`,
        }, title);
        button.addEventListener("click", () => downloadExport(name, version, format, button));
        downloads.append(button);
      }
      row.append(element("td", {}, `v${version}`), labels, downloads);
      return row;
    }));
    const select = $("label-version");
    const chosen = select.value;
    select.replaceChildren(...versions.map((version) =>
      element("option", { value: String(version) }, `v${version}`)));
    if (versions.includes(Number(chosen))) select.value = chosen;
    $("label-names").replaceChildren(...Object.keys(state.labels).sort()
      .map((label) => element("option", { value: label })));
  }

  async function moveLabel(event) {
    event.preventDefault();
    const name = state.model;
    if (!name) return;
    const label = $("label-name").value.trim();
    const version = Number($("label-version").value);
    const button = $("label-submit");
    button.disabled = true;
    $("label-result").textContent = "";
    delete $("label-result").dataset.version;
    showError("label-error", null);
    try {
      const before = state.labels[label];
      await api(`/v1/models/${encodeURIComponent(name)}/labels/${encodeURIComponent(label)}`, {
        method: "PUT",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ version }),
      });
      const result = $("label-result");
      result.textContent = before === undefined
        ? `Label ${label} now points at version ${version}.`
        : `Label ${label} moved from version ${before} to ${version}.`;
      result.dataset.label = label;
      result.dataset.version = String(version);
      await loadLabels(name);
      loadModels().catch(() => {});
    } catch (error) {
      showError("label-error", error);
    } finally {
      button.disabled = false;
    }
  }

  function attachmentName(disposition) {
    if (!disposition) return "";
    const encoded = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(disposition);
    if (encoded) return decodeURIComponent(encoded[1].trim());
    const plain = /filename\s*=\s*"?([^";]+)"?/i.exec(disposition);
    return plain ? plain[1].trim() : "";
  }

  function bytes(size) {
    return size < 1024 * 1024 ? `${(size / 1024).toFixed(1)} KiB` : `${(size / 1048576).toFixed(1)} MiB`;
  }

  async function downloadExport(name, version, format, button) {
    const { title, extension } = EXPORT_FORMATS.find((each) => each.format === format);
    const status = $("export-status");
    button.disabled = true;
    showError("export-error", null);
    status.textContent = `Preparing version ${version} as ${title}…`;
    status.dataset.state = "working";
    try {
      const path = `/v1/models/${encodeURIComponent(name)}/versions/${version}/export` +
        `?format=${encodeURIComponent(format)}`;
      const response = await fetch(path, { headers: authHeaders(), cache: "no-store" });
      if (!response.ok) {
        const body = await response.json().catch(() => null);
        if (response.status === 401) setConnection("error", "Key rejected (401)");
        throw new ApiError(response.status, body);
      }
      const blob = await response.blob();
      const filename = attachmentName(response.headers.get("Content-Disposition")) ||
        `${name}-${version}.${extension}`;
      // Saved through a temporary link to the blob: the bearer key never
      // appears in a URL.
      const url = URL.createObjectURL(blob);
      const link = element("a", { href: url, download: filename });
      link.hidden = true;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      status.textContent = `Downloaded ${filename} (${bytes(blob.size)}).`;
      Object.assign(status.dataset, { state: "done", filename, bytes: String(blob.size) });
    } catch (error) {
      status.textContent = "";
      status.dataset.state = "failed";
      showError("export-error", error);
    } finally {
      button.disabled = false;
    }
  }

  function renderModel(name, metadata) {
    const detail = $("model-detail");
    detail.hidden = false;
    detail.dataset.model = name;
    detail.dataset.version = metadata.version;
    $("model-title").textContent = `${name} · version ${metadata.version}`;
    const facts = [
      ["task", metadata.task],
      ["input shape", JSON.stringify(metadata.input_shape)],
      ["classes", (metadata.classes || []).length ? metadata.classes.join(", ") : "—"],
      ["metrics", Object.entries(metadata.metrics || {})
        .map(([key, value]) => `${key} ${number(value)}`).join(" · ")],
      ["epochs run", metadata.epochs_run],
      ["dataset", metadata.dataset],
      ["device", [metadata.device, metadata.backend].filter(Boolean).join(", ")],
      ["fit time", metadata.timings ? duration(metadata.timings.fit_s) : ""],
      ["published", metadata.created_at ? new Date(metadata.created_at).toLocaleString() : ""],
    ];
    $("model-facts").replaceChildren(...facts.flatMap(([term, value]) => [
      element("dt", {}, term), element("dd", { "data-fact": term }, String(value ?? "")),
    ]));
    const size = metadata.input_shape.reduce((a, b) => a * b, 1);
    $("predict-shape").textContent =
      `${size} numbers, comma-separated (shape ${JSON.stringify(metadata.input_shape)})`;
    $("predict-input").placeholder = Array(Math.min(size, 64)).fill("0").join(", ") +
      (size > 64 ? ", …" : "");
    $("predict-label").textContent = "";
    $("predict-probabilities").replaceChildren();
    showError("predict-error", null);
    $("label-result").textContent = "";
    $("export-status").textContent = "";
    showError("label-error", null);
    showError("export-error", null);
  }

  function reshape(flat, shape) {
    if (shape.length === 1) return flat;
    const step = flat.length / shape[0];
    return Array.from({ length: shape[0] }, (_, index) =>
      reshape(flat.slice(index * step, (index + 1) * step), shape.slice(1)));
  }

  function parseSample(text, shape) {
    const cells = text.split(/[\s,;\[\]]+/).filter(Boolean);
    const values = cells.map(Number);
    const bad = cells.find((cell, index) => !Number.isFinite(values[index]));
    if (bad !== undefined) throw new Error(`Not a number: ${JSON.stringify(bad)}`);
    const size = shape.reduce((a, b) => a * b, 1);
    if (values.length !== size) {
      throw new Error(`The model takes ${size} numbers (shape ${JSON.stringify(shape)}). ` +
        `Received: ${values.length}`);
    }
    return reshape(values, shape);
  }

  async function predict(event) {
    event.preventDefault();
    const name = state.model;
    const metadata = state.metadata;
    if (!name || !metadata) return;
    const button = $("predict-submit");
    button.disabled = true;
    try {
      const sample = parseSample($("predict-input").value, metadata.input_shape);
      const { body, response } = await api(`/v1/models/${encodeURIComponent(name)}:predict`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ instances: [sample] }),
      });
      showPrediction(metadata, body, response.headers.get("Fitserve-Model-Version"));
      showError("predict-error", null);
    } catch (error) {
      showError("predict-error", error);
    } finally {
      button.disabled = false;
    }
  }

  function showPrediction(metadata, body, version) {
    const outputs = body.predictions[0];
    const classes = metadata.classes || [];
    const label = body.labels ? String(body.labels[0]) : outputs.map(number).join(", ");
    const labelNode = $("predict-label");
    labelNode.textContent = label;
    labelNode.dataset.version = version || "";
    let rows;
    if (metadata.task === "binary") {
      rows = [[classes[0], 1 - outputs[0]], [classes[1], outputs[0]]];
    } else if (metadata.task === "categorical") {
      rows = outputs.map((value, index) => [classes[index], value]);
    } else {
      rows = outputs.map((value, index) => [`output ${index}`, value]);
    }
    const probabilities = metadata.task !== "regression";
    const best = Math.max(...rows.map(([, value]) => value));
    $("predict-probabilities").replaceChildren(...rows.map(([name, value]) => {
      const item = element("li", {
        "data-testid": "probability", "data-class": String(name), "data-value": String(value),
        class: probabilities && value === best ? "best" : "",
      });
      const track = element("span");
      if (probabilities) {
        const fill = element("span", { class: "fill" });
        fill.style.display = "block";
        fill.style.width = `${Math.round(value * 100)}%`;
        track.append(fill);
      }
      item.append(element("span", {}, String(name)), track,
        element("span", { class: "value" }, probabilities ? `${(value * 100).toFixed(1)}%` : number(value)));
      return item;
    }));
  }

  // ---- training form ------------------------------------------------------

  async function loadDatasets() {
    const { body } = await api("/v1/datasets?limit=500");
    const select = $("train-dataset");
    const chosen = select.value;
    const options = body.datasets.map((record) => {
      const target = record.target || {};
      const classes = (target.classes || []).length ? ` (${target.classes.length} classes)` : "";
      return element("option", { value: record.id },
        `${record.id.slice(0, 10)}… · ${record.rows} rows · x ${JSON.stringify(record.x_shape)} · ` +
        `${target.kind || "?"}${classes}`);
    });
    select.replaceChildren(element("option", { value: "" }, "(upload a file below)"), ...options);
    select.value = body.datasets.some((record) => record.id === chosen) ? chosen : "";
  }

  async function submitTraining(event) {
    event.preventDefault();
    const button = $("train-submit");
    button.disabled = true;
    $("train-result").textContent = "";
    showError("train-error", null);
    try {
      let parsed;
      try {
        parsed = JSON.parse($("train-spec").value);
      } catch (error) {
        throw new Error(`The spec is not valid JSON: ${error.message}`);
      }
      // A {"model", "spec"} file (as in examples/) or a bare spec.
      const spec = parsed.spec && !parsed.layers ? parsed.spec : parsed;
      const model = $("train-model").value.trim() || parsed.model || "";
      const file = $("train-file").files[0];
      const dataset = $("train-dataset").value;
      let options;
      if (file) {
        const form = new FormData();
        form.append("spec", JSON.stringify({ model, spec }));
        form.append("file", file, file.name);
        options = { method: "POST", body: form };
      } else if (dataset) {
        options = {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ model, spec, dataset }),
        };
      } else {
        throw new Error("Choose a stored dataset or a file to upload.");
      }
      const { body } = await api("/v1/jobs", options);
      const result = $("train-result");
      result.textContent = `Job ${body.id} queued for model ${body.model}.`;
      result.dataset.jobId = body.id;
      selectJob(body.id);
      refreshJobs().catch(() => {});
      if (file) loadDatasets().catch(() => {});
    } catch (error) {
      showError("train-error", error);
    } finally {
      button.disabled = false;
    }
  }

  // ---- start --------------------------------------------------------------

  function keyFromFragment() {
    const match = /(?:^#|&)key=([^&]*)/.exec(location.hash);
    if (!match) return;
    state.key = decodeURIComponent(match[1]);
    localStorage.setItem(KEY_STORAGE, state.key);
    history.replaceState(null, "", location.pathname + location.search);
  }

  function refreshAll() {
    if (!state.key) return setConnection("no-key", "No key");
    for (const load of [refreshJobs, loadModels, loadDatasets]) {
      load().catch((error) => console.warn(error));
    }
  }

  function every(milliseconds, work) {
    const tick = async () => {
      if (state.key && !document.hidden) await work().catch((error) => console.warn(error));
      setTimeout(tick, milliseconds);
    };
    setTimeout(tick, milliseconds);
  }

  function start() {
    keyFromFragment();
    $("api-key").value = state.key;
    $("train-spec").value = JSON.stringify(EXAMPLE_SPEC, null, 2);
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      state.key = $("api-key").value.trim();
      localStorage.setItem(KEY_STORAGE, state.key);
      refreshAll();
      if (state.jobId) selectJob(state.jobId);
    });
    $("models-refresh").addEventListener("click", () => loadModels().catch(() => {}));
    $("predict-form").addEventListener("submit", predict);
    $("label-form").addEventListener("submit", moveLabel);
    $("train-form").addEventListener("submit", submitTraining);
    $("job-cancel").addEventListener("click", cancelJob);
    $("trials-body").addEventListener("mouseleave", () => emphasizeTrial(null));
    refreshAll();
    every(JOBS_EVERY_MS, refreshJobs);
    every(MODELS_EVERY_MS, loadModels);
  }

  start();
})();
