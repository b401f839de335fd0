// What every part of the dashboard shares: its state (the key, the selected
// job and model), the DOM and number-formatting helpers, and `announce`, the
// page-wide events by which one part asks another to refresh (a finished job
// refreshes the models list) without importing it.

export const KEY_STORAGE = "fitserve.apiKey";
export const FINAL_STATES = new Set(["succeeded", "failed", "cancelled"]);
export const SVG = "http://www.w3.org/2000/svg";
export const $ = (id) => document.getElementById(id);

export const state = {
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

export function setConnection(name, text) {
  const element = $("connection");
  element.dataset.state = name;
  element.textContent = text;
}

export function percent(fraction) {
  return Math.round(Math.max(0, Math.min(1, fraction || 0)) * 100);
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

export function number(value) {
  if (typeof value !== "number") return String(value);
  return Math.abs(value) >= 1e4 || (value !== 0 && Math.abs(value) < 1e-3)
    ? value.toExponential(2)
    : String(Number(value.toPrecision(4)));
}

export function clock(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : "";
}

export function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

export function showError(id, error) {
  const node = $(id);
  node.hidden = !error;
  node.textContent = error ? error.message || String(error) : "";
}

// Asks whichever part shows `what` ("jobs", "models") to fetch it again.
export function announce(what) {
  document.dispatchEvent(new Event(`fitserve:${what}-changed`));
}
