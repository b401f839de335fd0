// A job's progress bar and its text (epoch, percent, ETA): the jobs list's
// rows and the selected job draw the same.

import { duration, percent } from "./page.js";

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

export function paintProgress(bar, job) {
  const { fraction, text } = progressOf(job);
  bar.dataset.fraction = String(fraction);
  bar.dataset.state = job.state;
  bar.setAttribute("aria-valuenow", String(percent(fraction)));
  bar.setAttribute("aria-valuetext", text);
  bar.firstElementChild.style.width = `${percent(fraction)}%`;
  return text;
}
