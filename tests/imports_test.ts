/**
 * Layering: the folders of `src/` import each other without cycles (e.g. `train` may use
 * `eval`, so `eval` must not use `train`), and no two files of `src/` import each other's
 * values, directly or round a longer circle (type-only imports may go both ways: they are
 * erased).
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

/**
 * The relative specifiers `text` imports values from (static and dynamic; not `import type`,
 * `export type`, nor an `import { type a, type b }` whose every name is a type).
 */
function valueSpecifiers(text: string): string[] {
  const re =
    /(?:import|export)\s+(type\s+)?([^;]*?)\s*from\s*"(\.{1,2}\/[^"]+)"|import\s*\(\s*"(\.{1,2}\/[^"]+)"\s*\)|import\s+"(\.{1,2}\/[^"]+)"/g;
  const out: string[] = [];
  for (const m of withoutComments(text).matchAll(re)) {
    const [, typeKeyword, clause, fromSpec, dynamicSpec, bareSpec] = m;
    if (typeKeyword) continue;
    const names = clause?.trim().match(/^\{([\s\S]*)\}$/)?.[1].split(",").map((n) => n.trim())
      .filter(Boolean);
    if (names?.length && names.every((n) => n.startsWith("type "))) continue;
    out.push(fromSpec ?? dynamicSpec ?? bareSpec);
  }
  return out;
}

/** The value imports of `file`, resolved to paths under src/. */
async function valueImportsOf(file: string): Promise<string[]> {
  const specs = valueSpecifiers(await Deno.readTextFile(new URL(file, SRC)));
  return specs.map((s) => new URL(s, new URL(file, SRC)).href.slice(SRC.href.length));
}

/** File-level value circles known today, each as its files sorted and joined by " ↔ " (none). */
const KNOWN_VALUE_CIRCLES: readonly string[] = [];

/** Strongly connected groups of more than one node (Tarjan), each sorted. */
function circles(graph: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const group: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        group.push(w);
      } while (w !== v);
      if (group.length > 1) out.push(group.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

Deno.test("no two src/ files import each other's values (file level, beyond the known list)", async () => {
  const graph = new Map<string, Set<string>>();
  for (const f of await sources()) graph.set(f, new Set(await valueImportsOf(f)));
  const found = circles(graph).map((c) => c.join(" ↔ ")).sort();
  assertEquals(found, [...KNOWN_VALUE_CIRCLES].sort());
});

Deno.test("the value-import check sees a value circle and ignores type-only imports", () => {
  const text = [
    'import type { A } from "./a.ts";',
    'import { type B, type C } from "./b.ts";',
    'import { type D, e } from "./d.ts";',
    'export { f } from "./f.ts";',
    'export type { G } from "./g.ts";',
    'const h = await import("./h.ts");',
    '// import { i } from "./i.ts";',
  ].join("\n");
  assertEquals(valueSpecifiers(text), ["./d.ts", "./f.ts", "./h.ts"]);
  const valueCircle = new Map([["a.ts", new Set(["b.ts"])], ["b.ts", new Set(["a.ts"])]]);
  assertEquals(circles(valueCircle), [["a.ts", "b.ts"]]);
  assertEquals(circles(new Map([["a.ts", new Set(["b.ts"])], ["b.ts", new Set<string>()]])), []);
});
