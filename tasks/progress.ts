/**
 * Progress output for long tasks: a redrawn bar on a terminal, a plain line
 * every few seconds otherwise.
 *
 * @module
 */

import type { PretrainProgress as Progress } from "../src/train/pretrain.ts";

const fmtTime = (s: number): string => {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s` : `${Math.round(s)}s`;
};

/** A progress callback: redraws one line on a TTY, else prints a line at most every 5 s. */
export function progressPrinter(): (p: Progress) => void {
  const tty = Deno.stdout.isTerminal();
  const enc = new TextEncoder();
  let last = 0;
  return (p) => {
    const frac = p.step / p.totalSteps;
    const text =
      `stage ${p.stage} epoch ${p.epoch} step ${p.step}/${p.totalSteps} loss ${
        p.loss.toFixed(4)
      } ` +
      `${p.imagesPerS.toFixed(0)} img/s ETA ${fmtTime(p.etaS)}`;
    if (tty) {
      const width = 24;
      const bar = "█".repeat(Math.round(frac * width)).padEnd(width, "·");
      Deno.stdout.writeSync(
        enc.encode(`\r${bar} ${text}\x1b[K${p.step === p.totalSteps ? "\n" : ""}`),
      );
    } else if (performance.now() - last > 5000 || p.step === p.totalSteps) {
      last = performance.now();
      console.log(text);
    }
  };
}
