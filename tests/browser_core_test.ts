/**
 * The browser-safe core stays browser-safe: walking the static value imports of
 * `src/browser.ts` and the page (`web/main.ts`, `web/kernels.ts`) meets no `Deno` API, no
 * Deno-only `import.meta` field and no module outside the repository (`npm:`, `jsr:`,
 * `node:`, URLs, bare names). Type-only imports are erased by the bundler, so they are not
 * followed. The walker is tested on modules known to be Deno-only, and the bundle the page
 * is built from is checked for `Deno` too. The core is the package's `./browser` export, and it
 * type-checks against the DOM lib and `@webgpu/types` alone (`web/browser.json`, no Deno types).
 *
 * @module
 */
import { assert, assertEquals } from "../src/util/assert.ts";

const ROOT = new URL("../", import.meta.url);
/** The entries of the browser-safe core and the page. */
const ENTRIES = ["src/browser.ts", "web/main.ts", "web/kernels.ts"];

/** `src` with comments blanked; with `strings`, string and template contents blanked too. */
function strip(src: string, strings: boolean): string {
  let out = "";
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    const d = src[i + 1];
    if (c === "/" && d === "/") {
      const end = src.indexOf("\n", i);
      i = end < 0 ? src.length : end;
    } else if (c === "/" && d === "*") {
      const end = src.indexOf("*/", i + 2);
      const stop = end < 0 ? src.length : end + 2;
      out += src.slice(i, stop).replace(/[^\n]/g, " ");
      i = stop;
    } else if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      while (j < src.length && src[j] !== c) j += src[j] === "\\" ? 2 : 1;
      const body = src.slice(i + 1, j);
      out += c + (strings ? body.replace(/[^\n]/g, " ") : body) + c;
      i = j + 1;
    } else if (c === "/" && /[=(,:;!&|?{}\[]\s*$/.test(out.slice(-8)) && d !== " ") {
      // a regex literal: copy it opaque (it may hold quotes)
      let j = i + 1;
      let cls = false;
      while (j < src.length && (cls || src[j] !== "/") && src[j] !== "\n") {
        if (src[j] === "\\") j++;
        else if (src[j] === "[") cls = true;
        else if (src[j] === "]") cls = false;
        j++;
      }
      out += strings ? " ".repeat(j + 1 - i) : src.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** The value imports of a module (static, re-exports, dynamic); type-only ones left out. */
export function valueImports(src: string): string[] {
  const code = strip(src, false);
  const out: string[] = [];
  const stmt = /(?:^|[;\n])\s*(import|export)\s+([^;]*?)\s*from\s*["']([^"']+)["']/g;
  for (const m of code.matchAll(stmt)) {
    const clause = m[2].trim();
    if (/^type\b/.test(clause)) continue; // import type / export type
    const braces = clause.match(/^\{([^}]*)\}$/);
    if (braces) {
      const names = braces[1].split(",").map((s) => s.trim()).filter(Boolean);
      if (names.length && names.every((n) => /^type\s/.test(n))) continue; // all type-only
    }
    out.push(m[3]);
  }
  for (const m of code.matchAll(/(?:^|[;\n])\s*import\s*["']([^"']+)["']/g)) out.push(m[1]);
  for (const m of code.matchAll(/\bimport\s*\(\s*["']([^"']+)["']\s*\)/g)) out.push(m[1]);
  return out;
}

/** Why `src` (one module) is not browser-safe: Deno API uses, Deno-only import.meta fields. */
export function denoUses(src: string): string[] {
  const code = strip(src, true);
  const found: string[] = [];
  const lines = code.split("\n");
  lines.forEach((line, i) => {
    for (
      const m of line.matchAll(/\bDeno\b(\s*\.\s*\w+)?|\bimport\.meta\.(main|dirname|filename)\b/g)
    ) {
      found.push(`line ${i + 1}: ${m[0].replace(/\s+/g, "")}`);
    }
  });
  return found;
}

/** Walks the value-import graph from `entries`; returns the modules and every problem found. */
export async function walk(entries: string[]): Promise<{ modules: string[]; problems: string[] }> {
  const seen = new Set<string>();
  const problems: string[] = [];
  const from = new Map<string, string>();
  const queue = entries.map((e) => new URL(e, ROOT).href);
  while (queue.length) {
    const url = queue.shift()!;
    if (seen.has(url)) continue;
    seen.add(url);
    const rel = url.slice(ROOT.href.length);
    const via = from.get(url) ? ` (imported by ${from.get(url)})` : "";
    const src = await Deno.readTextFile(new URL(url));
    for (const u of denoUses(src)) problems.push(`${rel}${via}: uses ${u}`);
    for (const spec of valueImports(src)) {
      if (!spec.startsWith("./") && !spec.startsWith("../")) {
        problems.push(`${rel}${via}: imports "${spec}", which is not a module of this repository`);
        continue;
      }
      const next = new URL(spec, url).href;
      if (!from.has(next)) from.set(next, rel);
      queue.push(next);
    }
  }
  return { modules: [...seen].map((u) => u.slice(ROOT.href.length)).sort(), problems };
}

Deno.test("the browser-safe core and the page import nothing Deno-specific", async () => {
  const { modules, problems } = await walk(ENTRIES);
  assertEquals(
    problems,
    [],
    `Deno-specific code entered the browser-safe core:\n${problems.join("\n")}`,
  );
  // the walk covered the core: model, WebGPU backend, kernels, optimiser, data, safetensors
  for (
    const m of [
      "src/models/dbot.ts",
      "src/backend/webgpu/backend.ts",
      "kernels/matmul.ts",
      "src/train/adamw.ts",
      "src/data/shapes.ts",
      "src/io/safetensors.ts",
      "src/train/session.ts",
    ]
  ) assert(modules.includes(m), `the walk from ${ENTRIES} did not reach ${m}`);
  // and nothing of the Deno side
  for (
    const m of ["src/io/safetensors_file.ts", "src/backend/cpu/openblas.ts", "src/util/ffi.ts"]
  ) {
    assert(!modules.includes(m), `${m} is Deno-only but the browser core imports it`);
  }
  // the naming rule: a browser-safe/Deno-only pair is NAME.ts / NAME_file.ts, and the core
  // reaches no `_file.ts` at all
  const fileSide = modules.filter((m) => m.endsWith("_file.ts"));
  assertEquals(fileSide, [], `the browser core imports Deno-side files: ${fileSide.join(", ")}`);
});

Deno.test("walk() names the Deno API use and the Deno-only module it finds", async () => {
  const file = await walk(["src/io/safetensors_file.ts"]);
  assert(
    file.problems.some((p) =>
      p.startsWith("src/io/safetensors_file.ts: uses line") && p.endsWith("Deno.readFile")
    ),
    file.problems.join("\n"),
  );
  assert(
    file.problems.some((p) =>
      p.startsWith("src/util/atomic.ts (imported by src/io/safetensors_file.ts)")
    ),
    file.problems.join("\n"),
  );
  const cli = await walk(["src/util/cli.ts"]);
  assert(cli.problems.some((p) => p.includes('imports "node:util"')), cli.problems.join("\n"));
});

Deno.test("valueImports() skips type-only imports and doc examples, keeps the rest", () => {
  const src = [
    "/**",
    ' * import { x } from "./in_a_doc.ts";',
    " */",
    'import type { A } from "./type_only.ts";',
    'import { type B, type C } from "./all_types.ts";',
    'import { type D, e } from "./mixed.ts";',
    'export type { F } from "./reexport_type.ts";',
    'export { g } from "./reexport.ts";',
    'import * as h from "./star.ts";',
    'import "./side_effect.ts";',
    `const s = "// not a comment"; const r = /["']/;`,
    'const later = await import("./dynamic.ts");',
  ].join("\n");
  assertEquals(valueImports(src), [
    "./mixed.ts",
    "./reexport.ts",
    "./star.ts",
    "./side_effect.ts",
    "./dynamic.ts",
  ]);
  assertEquals(denoUses('const x = "Deno.readFile"; // Deno.exit\nDeno.exit(1);'), [
    "line 2: Deno.exit",
  ]);
});

Deno.test("every kernels/*.ts module with a compute kernel is in web/kernels.ts's check", async () => {
  const src = await Deno.readTextFile(new URL("web/kernels.ts", ROOT));
  const missing: string[] = [];
  for await (const e of Deno.readDir(new URL("kernels/", ROOT))) {
    if (!e.name.endsWith(".ts")) continue;
    const k = await Deno.readTextFile(new URL(`kernels/${e.name}`, ROOT));
    if (k.includes("@compute") && !src.includes(`from "../kernels/${e.name}"`)) {
      missing.push(e.name);
    }
  }
  assertEquals(missing, [], `add these kernel modules to MODULES in web/kernels.ts: ${missing}`);
});

Deno.test("the page's bundle mentions no Deno API", async () => {
  const out = await Deno.makeTempFile({ suffix: ".js" });
  try {
    const r = await new Deno.Command("deno", {
      args: ["bundle", "--quiet", "--platform", "browser", "-o", out, "web/main.ts"],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(r.success, `deno bundle failed: ${new TextDecoder().decode(r.stderr)}`);
    const js = await Deno.readTextFile(out);
    assert(js.length > 10_000, `the bundle is only ${js.length} bytes`);
    assertEquals(js.match(/\bDeno\s*\.\s*\w+/g), null);
  } finally {
    await Deno.remove(out);
  }
});

Deno.test("the ./browser export is the browser-safe core and type-checks for the browser", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  assertEquals(config.exports["./browser"], "./src/browser.ts");
  assert(ENTRIES.includes(config.exports["./browser"].slice(2)), "the walk starts at the export");
  // the DOM lib and @webgpu/types, no Deno namespace: a Deno API anywhere in the graph fails
  const browser = JSON.parse(await Deno.readTextFile(new URL("web/browser.json", ROOT)));
  assert(!browser.compilerOptions.lib.some((l: string) => l.startsWith("deno")), "no Deno lib");
  const r = await new Deno.Command("deno", {
    args: ["check", "--quiet", "--config", "web/browser.json", "src/browser.ts"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(r.stderr) + new TextDecoder().decode(r.stdout);
  assert(r.success, `src/browser.ts does not type-check for the browser:\n${out}`);
});

Deno.test("selectBrowserBackend() says what is missing where there is no navigator.gpu", async () => {
  const { selectBrowserBackend } = await import("../src/backend/select_browser.ts");
  const { GpuUnavailableError } = await import("../src/backend/webgpu/context.ts");
  const gpu = Object.getOwnPropertyDescriptor(Navigator.prototype, "gpu");
  if (!gpu) return; // a Deno without WebGPU: nothing to hide
  Object.defineProperty(Navigator.prototype, "gpu", { configurable: true, get: undefined });
  delete (Navigator.prototype as { gpu?: unknown }).gpu;
  try {
    const e = await selectBrowserBackend().then(() => null, (e) => e);
    assert(e instanceof GpuUnavailableError, `expected GpuUnavailableError, got ${e}`);
    assertEquals(e.message, "this browser has no navigator.gpu");
  } finally {
    Object.defineProperty(Navigator.prototype, "gpu", gpu);
  }
});
