/**
 * Layering: the folders of `src/` import each other without cycles (e.g. `train` may use
 * `eval`, so `eval` must not use `train`).
 */
import { assertEquals } from "../src/util/assert.ts";

const SRC = new URL("../src/", import.meta.url);

/** Every `.ts` file under `src/` (relative paths). */
async function sources(dir = SRC, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) {
      out.push(...await sources(new URL(`${e.name}/`, dir), `${prefix}${e.name}/`));
    } else if (e.name.endsWith(".ts")) out.push(`${prefix}${e.name}`);
  }
  return out;
}

/** The relative imports of `file` (static and dynamic), resolved to paths under src/. */
async function importsOf(file: string): Promise<string[]> {
  const text = withoutComments(await Deno.readTextFile(new URL(file, SRC)));
  const specs = [...text.matchAll(/(?:from|import\()\s*"(\.{1,2}\/[^"]+)"/g)].map((m) => m[1]);
  return specs.map((s) => new URL(s, new URL(file, SRC)).href.slice(SRC.href.length));
}

/** `text` without its JSDoc/line comments (doc examples import the module they document). */
function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

/** Cycles of a directed graph (each once, as a path that returns to its start). */
function cycles(graph: Map<string, Set<string>>): string[][] {
  const found: string[][] = [];
  const seen = new Set<string>();
  for (const start of graph.keys()) {
    const walk = (node: string, path: string[]) => {
      for (const next of graph.get(node) ?? []) {
        if (next === start) {
          const key = [...path].sort().join(",");
          if (!seen.has(key)) {
            seen.add(key);
            found.push([...path, start]);
          }
        } else if (!path.includes(next) && next > start) walk(next, [...path, next]);
      }
    };
    walk(start, [start]);
  }
  return found;
}

Deno.test("src/ folders import each other without cycles", async () => {
  const folder = (f: string) => f.includes("/") ? f.slice(0, f.indexOf("/")) : "(root)";
  const graph = new Map<string, Set<string>>();
  for (const f of await sources()) {
    for (const dep of await importsOf(f)) {
      const a = folder(f);
      const b = folder(dep);
      if (a !== b) graph.set(a, (graph.get(a) ?? new Set()).add(b));
    }
  }
  assertEquals(cycles(graph).map((c) => c.join(" → ")), []);
});
