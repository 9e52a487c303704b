import { assert, assertEquals, assertThrows } from "../src/util/assert.ts";
import {
  barChartSvg,
  esc,
  formatTick,
  lineChartSvg,
  logTicks,
  niceTicks,
} from "../src/eval/chart.ts";

/** Asserts `svg` is one `<svg>` element whose tags nest properly; returns its tag names. */
function assertWellFormed(svg: string): string[] {
  assert(svg.startsWith("<svg "), `starts with ${svg.slice(0, 20)}`);
  assert(svg.trimEnd().endsWith("</svg>"), "ends with </svg>");
  const stack: string[] = [];
  const names: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)([^<>]*?)(\/?)>/g)) {
    const [, close, name, attrs, self] = m;
    assert(!/NaN|Infinity|undefined/.test(attrs), `attribute values are finite in ${m[0]}`);
    if (close) assertEquals(stack.pop(), name, `closing </${name}>`);
    else if (!self) stack.push(name);
    names.push(name);
  }
  assertEquals(stack, [], "every tag is closed");
  // Outside tags, no raw < or & that is not an entity.
  const textOnly = svg.replace(/<[^<>]*>/g, "");
  assert(!/[<>]|&(?!#\d+;|amp;|lt;|gt;|quot;)/.test(textOnly), "text is escaped");
  return names;
}

Deno.test("niceTicks() gives 1-2-5 steps covering the range", () => {
  assertEquals(niceTicks(0, 0.97).values, [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assertEquals(niceTicks(0, 97).values, [0, 20, 40, 60, 80, 100]);
  assertEquals(niceTicks(-3, 7).values, [-4, -2, 0, 2, 4, 6, 8]);
  assertEquals(niceTicks(0.31, 0.52).values, [0.3, 0.35, 0.4, 0.45, 0.5, 0.55]);
  assertEquals(niceTicks(1200, 4800).values, [1000, 2000, 3000, 4000, 5000]);
  const t = niceTicks(0.1, 0.7);
  assertEquals([t.min, t.max, t.step], [0, 0.8, 0.2]);
  assertEquals(t.values, [0, 0.2, 0.4, 0.6, 0.8]);
});

Deno.test("niceTicks() widens a zero-width range instead of dividing by zero", () => {
  assertEquals(niceTicks(5, 5).values, [4.4, 4.6, 4.8, 5, 5.2, 5.4, 5.6]);
  assertEquals(niceTicks(0, 0).values, [-1, -0.5, 0, 0.5, 1]);
  assertThrows(() => niceTicks(0, NaN), RangeError, "non-finite");
});

Deno.test("logTicks() gives decades, or 1-2-5 within fewer than three decades", () => {
  assertEquals(logTicks(0.03, 7).values, [0.01, 0.1, 1, 10]);
  assertEquals(logTicks(0.3, 0.9).values, [0.1, 0.2, 0.5, 1]);
  assertEquals(logTicks(2, 80).values, [1, 2, 5, 10, 20, 50, 100]);
  assertEquals(logTicks(2, 300).values, [1, 10, 100, 1000]);
  assertEquals(logTicks(1, 1).values, [1, 2, 5, 10]);
  assertThrows(() => logTicks(0, 1), RangeError, "positive");
});

Deno.test("formatTick() prints ticks without float noise", () => {
  assertEquals([0.1 + 0.2, 1e-4, 250000, 12, -0.5].map(formatTick), [
    "0.3",
    "1e-4",
    "2.5e5",
    "12",
    "-0.5",
  ]);
});

Deno.test("lineChartSvg() is well-formed with series names, escaped title and markers", () => {
  const svg = lineChartSvg({
    title: `loss <ViT-T> & "dBOT"`,
    xLabel: "epoch",
    yLabel: "loss",
    series: [
      { name: "train", points: [[0, 1], [1, 0.7], [2, 0.5], [3, 0.45]] },
      { name: "val", points: [[0, 1.1], [2, 0.6]] },
    ],
    verticalMarkers: [{ x: 1, label: "stage 2" }, { x: 2, label: "stage 3" }],
  });
  const tags = assertWellFormed(svg);
  assert(svg.includes(esc(`loss <ViT-T> & "dBOT"`)), "escaped title");
  assert(!svg.includes("<ViT-T>"), "raw title absent");
  for (const s of ["train", "val", "stage 2", "stage 3", "epoch"]) {
    assert(svg.includes(`>${s}<`), s);
  }
  assertEquals(tags.filter((t) => t === "path").length, 2);
  assertEquals((svg.match(/stroke-dasharray/g) ?? []).length, 2);
  for (const v of ["0.4", "0.6", "0.8", "1"]) assert(svg.includes(`>${v}</text>`), `y tick ${v}`);
});

Deno.test("lineChartSvg() skips NaN and Infinity points and breaks the line there", () => {
  const svg = lineChartSvg({
    title: "t",
    xLabel: "x",
    yLabel: "y",
    series: [{
      name: "s",
      points: [[0, 1], [1, NaN], [2, 2], [3, 3], [Infinity, 4], [5, -Infinity]],
    }],
  });
  assertWellFormed(svg);
  assertEquals((svg.match(/<path /g) ?? []).length, 1); // [2,2]-[3,3]
  assertEquals((svg.match(/<circle /g) ?? []).length, 1); // the isolated [0,1]
  // Log axis: y ≤ 0 is skipped too.
  const log = lineChartSvg({
    title: "t",
    xLabel: "x",
    yLabel: "y",
    logY: true,
    series: [{ name: "s", points: [[0, 0], [1, 0.5], [2, 0.05]] }],
  });
  assertWellFormed(log);
  assert(log.includes(">0.01</text>") && log.includes(">1</text>"), "decade ticks");
});

Deno.test("lineChartSvg() draws a single point, a flat series and an empty chart", () => {
  for (
    const points of [[[3, 7]], [[0, 2], [1, 2], [2, 2]], [], [[NaN, NaN]]] as [number, number][][]
  ) {
    const svg = lineChartSvg({
      title: "one",
      xLabel: "x",
      yLabel: "y",
      series: [{ name: "p", points }],
    });
    assertWellFormed(svg);
  }
  const one = lineChartSvg({
    title: "one",
    xLabel: "x",
    yLabel: "y",
    series: [{ name: "p", points: [[3, 7]] }],
  });
  assert(/<circle cx="[\d.]+" cy="[\d.]+"/.test(one), "a dot at finite coordinates");
});

Deno.test("barChartSvg() is well-formed with one bar per finite value", () => {
  const svg = barChartSvg({
    title: "per-layer <CKA>",
    yLabel: "value",
    groups: ["block 0", "block 1", "block 2"],
    series: [{ name: "dBOT", values: [0.5, -0.25, 1] }, { name: "MAE", values: [0.4, NaN, 0.9] }],
  });
  assertWellFormed(svg);
  assertEquals((svg.match(/<rect x=/g) ?? []).length, 5 + 2); // bars + legend swatches
  for (const s of ["dBOT", "MAE", "block 2", "per-layer &#60;CKA&#62;"]) assert(svg.includes(s), s);
  assertThrows(
    () =>
      barChartSvg({
        title: "t",
        yLabel: "y",
        groups: ["a"],
        series: [{ name: "s", values: [1, 2] }],
      }),
    RangeError,
    "one value per group",
  );
});
