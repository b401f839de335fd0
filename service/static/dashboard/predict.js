// The predict form: one sample typed as numbers, reshaped to the model's
// input, and the answer as a label and a bar per class.

import { api } from "./api.js";
import { $, element, number, showError, state } from "./page.js";

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

export async function predict(event) {
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
