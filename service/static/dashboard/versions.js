// The selected model's versions: their labels (moved with PUT
// /v1/models/{name}/labels/{label}) and exports, fetched with the key as a
// blob and saved through an object URL (a plain link cannot send the
// Authorization header).

import { api, ApiError, authHeaders } from "./api.js";
import { $, announce, element, setConnection, showError, state } from "./page.js";

const EXPORT_FORMATS = [
  { format: "keras", title: "Keras", extension: "keras" },
  { format: "saved_model", title: "SavedModel", extension: "zip" },
  { format: "onnx", title: "ONNX", extension: "onnx" },
];

export function labelChips(labels, version) {
  return Object.entries(labels)
    .filter(([, target]) => version === undefined || target === version)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([label, target]) => element("span", {
      class: "label-chip", "data-testid": "model-label", "data-label": label,
      "data-version": String(target),
    }, version === undefined ? `${label} → v${target}` : label));
}

export async function loadLabels(name) {
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

export function renderVersions(name) {
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

export async function moveLabel(event) {
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
    announce("models");
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
