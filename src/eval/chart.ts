/**
 * Dependency-free SVG charts for run reports: {@link lineChartSvg} (loss and
 * metric curves, with dashed markers at stage boundaries) and
 * {@link barChartSvg} (grouped bars, e.g. per-layer metrics).
 *
 * Axes use "nice" ticks (steps of 1, 2 or 5 × 10ⁿ, {@link niceTicks}; decades
 * on a log axis, {@link logTicks}). Non-finite points are skipped (a line
 * breaks there), as are points ≤ 0 on a log axis. Text is XML-escaped.
 *
 * @example
 * ```ts
 * import { lineChartSvg } from "./chart.ts";
 * const svg = lineChartSvg({
 *   title: "pre-training loss",
 *   xLabel: "epoch",
 *   yLabel: "loss",
 *   series: [{ name: "train", points: [[0, 1], [1, 0.6], [2, 0.45]] }],
 *   verticalMarkers: [{ x: 1, label: "stage 2" }],
 * });
 * console.log(svg.includes("stage 2")); // true; write it with Deno.writeTextFile("loss.svg", svg)
 * ```
 *
 * @module
 */

/** One line of a {@link lineChartSvg}. */
export interface LineSeries {
  /** Legend entry. */
  name: string;
  /** `[x, y]` points in drawing order; non-finite ones are skipped. */
  points: [number, number][];
}

/** Options of {@link lineChartSvg}. */
export interface LineChartOptions {
  /** Chart title. */
  title: string;
  /** X axis label. */
  xLabel: string;
  /** Y axis label. */
  yLabel: string;
  /** The lines, coloured in order. */
  series: LineSeries[];
  /** Dashed vertical lines with a label at the top, e.g. stage boundaries. */
  verticalMarkers?: { x: number; label: string }[];
  /** Logarithmic y axis (points with y ≤ 0 are skipped). Default false. */
  logY?: boolean;
  /** Width in px. Default 720. */
  width?: number;
  /** Height in px. Default 420. */
  height?: number;
}

/** One bar colour of a {@link barChartSvg}: a value per group. */
export interface BarSeries {
  /** Legend entry. */
  name: string;
  /** One value per group; non-finite values leave a gap. */
  values: number[];
}

/** Options of {@link barChartSvg}. */
export interface BarChartOptions {
  /** Chart title. */
  title: string;
  /** Y axis label. */
  yLabel: string;
  /** Group names along the x axis. */
  groups: string[];
  /** Bars per group, coloured in order. */
  series: BarSeries[];
  /** Width in px. Default 720. */
  width?: number;
  /** Height in px. Default 420. */
  height?: number;
}

/** Ticks of an axis: the values, and the (widened) range they span. */
export interface Ticks {
  /** Tick values, ascending. */
  values: number[];
  /** Axis minimum (the first tick). */
  min: number;
  /** Axis maximum (the last tick). */
  max: number;
  /** Step between ticks (on a log axis: the decade factor, 10). */
  step: number;
}

/** Tableau 10: distinct, colour-blind-friendlier than the SVG defaults. */
const PALETTE = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
];
const FONT = 12;
/** Bottom of the title band; the plot (or the marker label rows) start here. */
const TOP = 34;
/** Height of one row of marker labels. */
const MARKER_ROW = FONT + 4;
/** Approximate advance of a sans-serif character, as a fraction of the font size. */
const CHAR_W = 0.6;

/**
 * Nice ticks covering `[min, max]`: a step of 1, 2 or 5 × 10ⁿ giving about
 * `target` intervals, the range widened outwards to whole steps. A zero-width
 * range is widened first (to `v ± 10%·|v|`, or `±1` around 0), so a flat
 * series never divides by zero.
 *
 * @example
 * ```ts
 * import { niceTicks } from "./chart.ts";
 * console.log(niceTicks(0, 0.97).values); // [0, 0.2, 0.4, 0.6, 0.8, 1]
 * ```
 */
export function niceTicks(min: number, max: number, target = 5): Ticks {
  if (!Number.isFinite(min) || !Number.isFinite(max)) {
    throw new RangeError(
      `Cannot make ticks for a non-finite range: current values are ${min} and ${max}`,
    );
  }
  if (min > max) [min, max] = [max, min];
  if (max - min <= Math.abs(max) * 1e-12) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  const rough = (max - min) / Math.max(1, target);
  const pow = 10 ** Math.floor(Math.log10(rough));
  const f = rough / pow;
  const step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * pow;
  // Integer tick indices keep i·step free of accumulated rounding.
  const lo = Math.floor(min / step + 1e-9);
  const hi = Math.ceil(max / step - 1e-9);
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const values: number[] = [];
  for (let i = lo; i <= hi; i++) values.push(roundTo(i * step, decimals));
  return { values, min: values[0], max: values[values.length - 1], step };
}

/**
 * Log-axis ticks covering `[min, max]` (both > 0), the range widened to whole
 * decades: every decade, or 1-2-5 within each decade when it spans fewer than three.
 *
 * @example
 * ```ts
 * import { logTicks } from "./chart.ts";
 * console.log(logTicks(0.03, 7).values); // [0.01, 0.1, 1, 10]
 * ```
 */
export function logTicks(min: number, max: number): Ticks {
  if (!(min > 0) || !(max > 0) || !Number.isFinite(min) || !Number.isFinite(max)) {
    throw new RangeError(
      `Cannot make log ticks for a range that is not positive and finite: current values are ${min} and ${max}`,
    );
  }
  if (min > max) [min, max] = [max, min];
  const lo = Math.floor(Math.log10(min) + 1e-9);
  let hi = Math.ceil(Math.log10(max) - 1e-9);
  if (hi === lo) hi++;
  const values: number[] = [];
  if (hi - lo >= 3) {
    for (let e = lo; e <= hi; e++) values.push(decade(e));
  } else {
    for (let e = lo; e < hi; e++) {
      for (const m of [1, 2, 5]) values.push(roundTo(m * decade(e), Math.max(0, -e)));
    }
    values.push(decade(hi));
  }
  return { values, min: values[0], max: values[values.length - 1], step: 10 };
}

/** Short tick text: no float noise, exponent notation for very large or small values. */
export function formatTick(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) {
    const [m, e] = v.toExponential().split("e");
    return `${Number(Number(m).toPrecision(3))}e${Number(e)}`;
  }
  return String(Number(v.toPrecision(6)));
}

/**
 * An SVG line chart: nice-tick axes with grid lines and labels, a legend on
 * the right, one polyline per series (broken at skipped points, isolated
 * points drawn as dots) and dashed labelled vertical markers.
 *
 * @example
 * ```ts
 * import { lineChartSvg } from "./chart.ts";
 * const svg = lineChartSvg({
 *   title: "loss",
 *   xLabel: "step",
 *   yLabel: "loss",
 *   series: [{ name: "train", points: [[0, 2], [10, 1]] }],
 *   logY: true,
 * });
 * console.log(svg.startsWith("<svg")); // true
 * ```
 */
export function lineChartSvg(opts: LineChartOptions): string {
  const { width = 720, height = 420, logY = false } = opts;
  const markers = (opts.verticalMarkers ?? []).filter((m) => Number.isFinite(m.x));
  // Segments of drawable points per series: a skipped point breaks the line.
  const segments = opts.series.map((s) => {
    const segs: [number, number][][] = [[]];
    for (const [x, y] of s.points) {
      const ok = Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0);
      if (ok) segs[segs.length - 1].push([x, y]);
      else if (segs[segs.length - 1].length > 0) segs.push([]);
    }
    return segs.filter((g) => g.length > 0);
  });
  const xs = [...segments.flat(2).map(([x]) => x), ...markers.map((m) => m.x)];
  const ys = segments.flat(2).map(([, y]) => y);
  const xt = innerTicks(...extent(xs, 0, 1));
  const yt = logY ? logTicks(...extent(ys, 1, 10)) : niceTicks(...extent(ys, 0, 1));

  const names = opts.series.map((s) => s.name);
  const yLabels = yt.values.map(formatTick);
  // Marker labels sit in rows above the plot, so they never cover the data.
  const f0 = layout(width, height, names, yLabels);
  const xScale = (f: Frame) => (x: number) =>
    f.left + ((x - xt.min) / (xt.max - xt.min)) * (f.right - f.left);
  const placed = placeLabels(markers, xScale(f0), width);
  const rows = placed.reduce((r, p) => Math.max(r, p.row + 1), 0);
  const frame = layout(width, height, names, yLabels, 0, rows * MARKER_ROW);
  const { left, top, right, bottom } = frame;
  const px = xScale(frame);
  const ty = logY ? Math.log10 : (v: number) => v;
  const [y0, y1] = [ty(yt.min), ty(yt.max)];
  const py = (y: number) => bottom - ((ty(y) - y0) / (y1 - y0)) * (bottom - top);

  const parts = [
    ...header(width, height, opts.title),
    ...yAxis(frame, yt.values, py, opts.yLabel),
    ...xt.values.map((v) => vline(px(v), top, bottom, "#e6e6e6")),
    axisLine(left, bottom, right, bottom),
    ...xt.values.map((v) =>
      text(px(v), bottom + FONT + 6, formatTick(v), { anchor: "middle", fill: "#444" })
    ),
    text((left + right) / 2, height - 8, opts.xLabel, { anchor: "middle" }),
  ];
  for (const p of placed) {
    const x = px(p.x);
    const y = TOP + (p.row + 1) * MARKER_ROW - 4; // label baseline
    parts.push(
      `<line x1="${n(x)}" y1="${n(y - FONT + 3)}" x2="${n(x)}" y2="${n(bottom)}" ` +
        `stroke="#777" stroke-width="1" stroke-dasharray="5,4"/>`,
      text(p.end ? x - 4 : x + 4, y, p.label, {
        anchor: p.end ? "end" : "start",
        size: FONT - 1,
        fill: "#555",
      }),
    );
  }
  segments.forEach((segs, i) => {
    const color = PALETTE[i % PALETTE.length];
    for (const seg of segs) {
      if (seg.length === 1) {
        parts.push(
          `<circle cx="${n(px(seg[0][0]))}" cy="${n(py(seg[0][1]))}" r="3" fill="${color}"/>`,
        );
      } else {
        const d = seg.map(([x, y], j) => `${j === 0 ? "M" : "L"}${n(px(x))},${n(py(y))}`).join(" ");
        parts.push(
          `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.8" stroke-linejoin="round"/>`,
        );
      }
    }
  });
  parts.push(...legend(frame, opts.series.map((s) => s.name), "line"), "</svg>");
  return parts.join("\n") + "\n";
}

/**
 * An SVG grouped bar chart: one cluster of bars per group, one colour per
 * series, bars from 0 (so negative values point down), nice-tick y axis.
 *
 * @example
 * ```ts
 * import { barChartSvg } from "./chart.ts";
 * const svg = barChartSvg({
 *   title: "attention distance",
 *   yLabel: "pixels",
 *   groups: ["block 0", "block 1"],
 *   series: [{ name: "dBOT", values: [12, 20] }, { name: "MAE", values: [9, 14] }],
 * });
 * console.log(svg.includes("dBOT")); // true
 * ```
 */
export function barChartSvg(opts: BarChartOptions): string {
  const { width = 720, height = 420, groups } = opts;
  for (const s of opts.series) {
    if (s.values.length !== groups.length) {
      throw new RangeError(
        `Cannot draw bar series "${s.name}" as it must have one value per group: ` +
          `${groups.length} groups and ${s.values.length} values`,
      );
    }
  }
  const vals = opts.series.flatMap((s) => s.values.filter(Number.isFinite));
  const [lo, hi] = extent(vals, 0, 1);
  const yt = niceTicks(Math.min(0, lo), Math.max(0, hi));
  const rotate = groups.length > 8 || groups.some((g) => textWidth(g, FONT) > 60);
  const labelH = rotate
    ? Math.min(90, Math.max(...groups.map((g) => textWidth(g, FONT))) * 0.72 + 8)
    : 0;
  const frame = layout(
    width,
    height,
    opts.series.map((s) => s.name),
    yt.values.map(formatTick),
    labelH,
  );
  const { left, top, right, bottom } = frame;
  const py = (y: number) => bottom - ((y - yt.min) / (yt.max - yt.min)) * (bottom - top);
  const G = Math.max(1, groups.length);
  const S = Math.max(1, opts.series.length);
  const gw = (right - left) / G;
  const bw = Math.min(48, (gw * 0.8) / S); // at least 10% padding each side of a cluster

  const parts = [
    ...header(width, height, opts.title),
    ...yAxis(frame, yt.values, py, opts.yLabel),
  ];
  opts.series.forEach((s, si) => {
    const color = PALETTE[si % PALETTE.length];
    s.values.forEach((v, gi) => {
      if (!Number.isFinite(v)) return;
      const x = left + (gi + 0.5) * gw + (si - S / 2) * bw;
      const [ya, yb] = [py(Math.max(0, v)), py(Math.min(0, v))];
      parts.push(
        `<rect x="${n(x)}" y="${n(ya)}" width="${n(Math.max(0.5, bw - 1))}" height="${
          n(yb - ya)
        }" fill="${color}"><title>${
          esc(`${s.name}, ${groups[gi]}: ${formatTick(v)}`)
        }</title></rect>`,
      );
    });
  });
  parts.push(axisLine(left, py(0), right, py(0)));
  groups.forEach((g, gi) => {
    const x = left + (gi + 0.5) * gw;
    if (rotate) {
      parts.push(
        `<text x="${n(x)}" y="${
          n(bottom + 10)
        }" font-size="${FONT}" fill="#444" text-anchor="end" transform="rotate(-40 ${n(x)} ${
          n(bottom + 10)
        })">${esc(g)}</text>`,
      );
    } else {
      parts.push(text(x, bottom + FONT + 6, g, { anchor: "middle", fill: "#444" }));
    }
  });
  parts.push(...legend(frame, opts.series.map((s) => s.name), "box"), "</svg>");
  return parts.join("\n") + "\n";
}

/** Escapes text for XML content and attribute values. */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

interface Frame {
  width: number;
  height: number;
  left: number;
  top: number;
  right: number;
  bottom: number;
}

/** The plot area, leaving room for the title, tick labels, axis labels and legend. */
function layout(
  width: number,
  height: number,
  names: string[],
  yTickLabels: string[],
  extraBottom = 0,
  extraTop = 0,
): Frame {
  const yTickW = Math.max(0, ...yTickLabels.map((t) => textWidth(t, FONT)));
  const legendW = names.length === 0
    ? 0
    : Math.max(24, ...names.map((s) => textWidth(s, FONT))) + 40;
  const left = 24 + yTickW + 10;
  const right = width - 12 - legendW;
  const top = TOP + extraTop + 6;
  const bottom = height - 46 - extraBottom;
  if (right - left < 20 || bottom - top < 20) {
    throw new RangeError(
      `Cannot draw a chart of ${width}×${height} px: the plot area would be ` +
        `${Math.round(right - left)}×${Math.round(bottom - top)} px`,
    );
  }
  return { width, height, left, top, right, bottom };
}

function header(width: number, height: number, title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    text(width / 2, 24, title, { anchor: "middle", size: FONT + 3, weight: "bold" }),
  ];
}

/** Horizontal grid lines, tick labels and the rotated y label. */
function yAxis(f: Frame, ticks: number[], py: (y: number) => number, label: string): string[] {
  const out = ticks.map((v) =>
    `<line x1="${n(f.left)}" y1="${n(py(v))}" x2="${n(f.right)}" y2="${
      n(py(v))
    }" stroke="#e6e6e6" stroke-width="1"/>`
  );
  out.push(axisLine(f.left, f.top, f.left, f.bottom));
  for (const v of ticks) {
    out.push(text(f.left - 6, py(v) + FONT * 0.35, formatTick(v), { anchor: "end", fill: "#444" }));
  }
  const cy = (f.top + f.bottom) / 2;
  out.push(
    `<text x="16" y="${n(cy)}" font-size="${FONT}" text-anchor="middle" transform="rotate(-90 16 ${
      n(cy)
    })">${esc(label)}</text>`,
  );
  return out;
}

function legend(f: Frame, names: string[], kind: "line" | "box"): string[] {
  const x = f.right + 14;
  return names.flatMap((name, i) => {
    const y = f.top + 8 + i * (FONT + 8);
    const color = PALETTE[i % PALETTE.length];
    const swatch = kind === "line"
      ? `<line x1="${n(x)}" y1="${n(y)}" x2="${n(x + 16)}" y2="${
        n(y)
      }" stroke="${color}" stroke-width="2.5"/>`
      : `<rect x="${n(x + 2)}" y="${n(y - 6)}" width="12" height="12" fill="${color}"/>`;
    return [swatch, text(x + 22, y + FONT * 0.35, name, {})];
  });
}

function vline(x: number, y0: number, y1: number, stroke: string): string {
  return `<line x1="${n(x)}" y1="${n(y0)}" x2="${n(x)}" y2="${
    n(y1)
  }" stroke="${stroke}" stroke-width="1"/>`;
}

function axisLine(x0: number, y0: number, x1: number, y1: number): string {
  return `<line x1="${n(x0)}" y1="${n(y0)}" x2="${n(x1)}" y2="${
    n(y1)
  }" stroke="#333" stroke-width="1"/>`;
}

function text(
  x: number,
  y: number,
  s: string,
  o: { anchor?: "start" | "middle" | "end"; size?: number; fill?: string; weight?: string },
): string {
  const attrs = [
    `x="${n(x)}"`,
    `y="${n(y)}"`,
    `font-size="${o.size ?? FONT}"`,
    o.anchor && o.anchor !== "start" ? `text-anchor="${o.anchor}"` : "",
    o.fill ? `fill="${o.fill}"` : "",
    o.weight ? `font-weight="${o.weight}"` : "",
  ].filter(Boolean);
  return `<text ${attrs.join(" ")}>${esc(s)}</text>`;
}

/**
 * Ticks for an axis spanning exactly `[min, max]` (the data, as for a time
 * axis): the nice ticks that fall inside. A zero-width range is widened as in
 * {@link niceTicks}.
 */
function innerTicks(min: number, max: number): Ticks {
  const t = niceTicks(min, max);
  if (max - min <= Math.abs(max) * 1e-12) return t;
  const eps = t.step * 1e-9;
  return { ...t, values: t.values.filter((v) => v >= min - eps && v <= max + eps), min, max };
}

/**
 * Rows for marker labels: each label goes right of its line (left of it when
 * it would leave the chart), in the first row where it overlaps no other.
 */
function placeLabels(
  markers: { x: number; label: string }[],
  px: (x: number) => number,
  width: number,
): { x: number; label: string; row: number; end: boolean }[] {
  const taken: [number, number][][] = [];
  return [...markers].sort((a, b) => a.x - b.x).map((m) => {
    const x = px(m.x);
    const w = textWidth(m.label, FONT - 1) + 4;
    const end = x + w > width - 4;
    const span: [number, number] = end ? [x - w, x] : [x, x + w];
    let row = 0;
    while (taken[row]?.some(([a, b]) => span[0] < b + 6 && a < span[1] + 6)) row++;
    (taken[row] ??= []).push(span);
    return { ...m, row, end };
  });
}

/** `[min, max]` of `v`, or `[a, b]` when `v` is empty. */
function extent(v: number[], a: number, b: number): [number, number] {
  if (v.length === 0) return [a, b];
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of v) {
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return [lo, hi];
}

function textWidth(s: string, size: number): number {
  return s.length * size * CHAR_W;
}

function decade(e: number): number {
  return Number(`1e${e}`); // exact, unlike 10 ** -3
}

function roundTo(v: number, decimals: number): number {
  return Number(v.toFixed(Math.min(100, decimals)));
}

/** A coordinate with at most 2 decimals. */
function n(v: number): string {
  return String(Math.round(v * 100) / 100);
}
