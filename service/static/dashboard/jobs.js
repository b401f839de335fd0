// The jobs list, newest first, polled: a row per job with its progress; a
// click follows that job. The listing also brings a running search's trials,
// which its event stream does not carry after the snapshot.

import { api } from "./api.js";
import { scheduleRender, selectJob } from "./job.js";
import { $, clock, element, FINAL_STATES, state } from "./page.js";
import { paintProgress } from "./progress.js";

export async function refreshJobs() {
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
