/**
 * The Deno side of the page (Deno only; the page itself is `main.ts`): type-check and
 * bundle it into a self-contained static site (`web/dist/`: `index.html` and `main.js`,
 * which any plain file server can host), and serve that site on 127.0.0.1.
 *
 * @module
 */

const WEB = new URL("./", import.meta.url);
const ROOT = new URL("../", import.meta.url);

/** The static site {@link buildWeb} writes. */
export const SITE = new URL("dist/", WEB);
/** Where {@link buildWeb} writes the bundle. */
export const BUNDLE = new URL("main.js", SITE);

/** Options of {@link buildWeb}. */
export interface BuildOptions {
  /** Type-check `main.ts` for the browser first (DOM + `npm:@webgpu/types`). Default true. */
  check?: boolean;
  /** Minify the bundle. Default false. */
  minify?: boolean;
}

async function run(args: string[], what: string): Promise<void> {
  const r = await new Deno.Command("deno", {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    const out = new TextDecoder().decode(r.stderr) + new TextDecoder().decode(r.stdout);
    throw new Error(`Cannot build the page: ${what} failed:\n${out.trim()}`);
  }
}

/**
 * Type-checks the page for the browser and writes the static site: `web/dist/main.js` (the
 * bundle) and `web/dist/index.html` (the page, which loads `main.js` from beside it).
 * Returns the bundle's size in bytes.
 */
export async function buildWeb(o: BuildOptions = {}): Promise<number> {
  if (o.check !== false) {
    await run(
      ["check", "--quiet", "--config", "web/browser.json", "web/main.ts"],
      "the browser type check",
    );
  }
  await Deno.mkdir(new URL("dist/", WEB), { recursive: true });
  const tmp = new URL(`dist/main.js.tmp-${Deno.pid}`, WEB);
  const args = ["bundle", "--quiet", "--platform", "browser", "-o", tmp.pathname, "web/main.ts"];
  if (o.minify) args.splice(1, 0, "--minify");
  await run(args, "deno bundle");
  await Deno.rename(tmp, BUNDLE);
  const html = new URL(`index.html.tmp-${Deno.pid}`, SITE);
  await Deno.copyFile(new URL("index.html", WEB), html);
  await Deno.rename(html, new URL("index.html", SITE));
  return (await Deno.stat(BUNDLE)).size;
}

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  map: "application/json",
};

/** What {@link serveWeb} needs. */
export interface ServeOptions {
  /** Port on 127.0.0.1 (0: any free port). */
  port: number;
  /** Receives `POST /report/<kind>` bodies from the page (`report=1`); default: ignored. */
  onReport?: (kind: string, body: Uint8Array) => void;
}

/** Serves the static site `web/dist/` on 127.0.0.1 until `shutdown()`. */
export function serveWeb(o: ServeOptions): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: o.port, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (req.method === "POST" && path.startsWith("/report/")) {
      o.onReport?.(path.slice("/report/".length), new Uint8Array(await req.arrayBuffer()));
      return new Response(null, { status: 204 });
    }
    if (req.method !== "GET") return new Response("method not allowed", { status: 405 });
    const file = path === "/" ? "index.html" : path.slice(1);
    if (!/^(index\.html|[\w.-]+\.(js|map))$/.test(file)) {
      return new Response("not found", { status: 404 });
    }
    try {
      const body = await Deno.readFile(new URL(file, SITE));
      const type = TYPES[file.slice(file.lastIndexOf(".") + 1)];
      return new Response(body, { headers: { "content-type": type, "cache-control": "no-store" } });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        return new Response(`web/dist/${file} is missing: run deno task build-web`, {
          status: 404,
        });
      }
      throw e;
    }
  });
}
