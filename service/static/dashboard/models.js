// The models list (each with its labels) and the selected model's facts,
// from its metadata; its versions, labels and exports are versions.js's.

import { api } from "./api.js";
import { $, duration, element, number, showError, state } from "./page.js";
import { labelChips, loadLabels, renderVersions } from "./versions.js";

export async function loadModels() {
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
