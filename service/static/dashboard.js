// The fitserve dashboard: plain DOM and fetch(), ES modules and no build step
// (index.html loads this one; the parts are in dashboard/, one per panel or
// table: jobs and the selected job, its curves and trials, models and their
// versions, the predict and train forms, and the shared page and api).
//
// Here: the key (from the form, or a `#key=` link, then kept in localStorage
// and sent on every API call), the panels' first load and their polling, and
// the page-wide refresh events the parts announce. The page opens on the
// newest job (its newest training job, if any).

import { cancelJob, selectJob } from "./dashboard/job.js";
import { refreshJobs } from "./dashboard/jobs.js";
import { loadModels } from "./dashboard/models.js";
import { $, KEY_STORAGE, setConnection, state } from "./dashboard/page.js";
import { predict } from "./dashboard/predict.js";
import { EXAMPLE_SPEC, loadDatasets, submitTraining } from "./dashboard/train.js";
import { emphasizeTrial } from "./dashboard/trials.js";
import { moveLabel } from "./dashboard/versions.js";

const JOBS_EVERY_MS = 2000;
const MODELS_EVERY_MS = 10000;

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
  document.addEventListener("fitserve:jobs-changed", () => refreshJobs().catch(() => {}));
  document.addEventListener("fitserve:models-changed", () => loadModels().catch(() => {}));
  refreshAll();
  every(JOBS_EVERY_MS, refreshJobs);
  every(MODELS_EVERY_MS, loadModels);
}

start();
