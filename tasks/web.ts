/**
 * `deno task web [--port N]`: serves the dBOT page (`web/`, built by `deno task build-web`)
 * on http://127.0.0.1:N/. Open it in a browser with WebGPU; the page trains there.
 *
 * @module
 */
import { parseTaskFlags, positiveInt } from "./flags.ts";
import { main } from "./main.ts";
import { BUNDLE, serveWeb } from "../web/serve.ts";

await main(async () => {
  const flags = parseTaskFlags("deno task web [--port N]", {
    port: { type: "string", default: "8000", help: "port on 127.0.0.1" },
  });
  const port = positiveInt(flags.port, "port")!;
  try {
    await Deno.stat(BUNDLE);
  } catch {
    throw new Error("web/dist/ is missing: run deno task build-web first");
  }
  const server = serveWeb({ port });
  console.log(`serving the dBOT page on http://127.0.0.1:${server.addr.port}/ (Ctrl-C stops)`);
  await server.finished;
});
