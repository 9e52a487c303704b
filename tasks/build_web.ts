/**
 * `deno task build-web`: type-checks the browser page (`web/main.ts`) against the DOM and
 * `npm:@webgpu/types`, and writes the static site `web/dist/` (`index.html`, `main.js`):
 * host it with any file server (`deno task web` serves it locally).
 *
 * @module
 */
import { parseTaskFlags } from "./flags.ts";
import { main } from "./main.ts";
import { buildWeb } from "../web/serve.ts";

await main(async () => {
  const flags = parseTaskFlags("deno task build-web [--no-check] [--minify]", {
    "no-check": { type: "boolean", help: "skip the browser type check" },
    minify: { type: "boolean", help: "minify the bundle" },
  });
  const t0 = performance.now();
  const bytes = await buildWeb({ check: !flags["no-check"], minify: Boolean(flags.minify) });
  const s = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(
    `wrote web/dist/ (index.html, main.js ${(bytes / 1024).toFixed(0)} KiB) in ${s} s: ` +
      "host it with any static file server, or run deno task web",
  );
});
