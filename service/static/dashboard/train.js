// The train form: a spec (a bare one, or {"model", "spec"} as in examples/)
// on a stored dataset or a file uploaded with it; the new job is followed.

import { api } from "./api.js";
import { selectJob } from "./job.js";
import { refreshJobs } from "./jobs.js";
import { $, element, showError } from "./page.js";

export const EXAMPLE_SPEC = {
  input_shape: [4],
  layers: [
    { type: "dense", units: 16, activation: "relu" },
    { type: "dense", units: 3, activation: "softmax" },
  ],
  compile: { loss: "categorical_crossentropy", optimizer: "adam", metrics: ["accuracy"] },
  fit: { epochs: 50, batch_size: 5, validation_split: 0.2 },
  seed: 7,
};

export async function loadDatasets() {
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

export async function submitTraining(event) {
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
