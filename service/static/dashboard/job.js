// The selected job, followed through GET /v1/jobs/{id}/events: `snapshot`
// (the whole record), one `epoch` per epoch, then `state` events; the stream
// ends after a final state and is read again (a fresh snapshot) if it ends
// before one. Drawn as its curves, or, with trials, the trial table.

import { api, ApiError, authHeaders, readEvents } from "./api.js";
import { drawCurves, drawTrialCurves } from "./curves.js";
import { $, announce, FINAL_STATES, showError, state } from "./page.js";
import { paintProgress } from "./progress.js";
import { emphasizeTrial, hasTrials, renderTrials, trialsOf } from "./trials.js";

const RECONNECT_MS = 1000;

export function selectJob(jobId) {
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
    announce("jobs");
    if (body.state === "succeeded") announce("models");
  } catch (error) {
    console.warn(error);
  }
}

export function scheduleRender() {
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

export async function cancelJob() {
  if (!state.jobId) return;
  try {
    await api(`/v1/jobs/${encodeURIComponent(state.jobId)}:cancel`, { method: "POST" });
    announce("jobs");
  } catch (error) {
    showError("job-error", error);
  }
}
