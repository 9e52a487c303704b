/**
 * `deno task info`: which backend `auto` picks on this machine and why, the
 * CPU GEMM in use, and the WebGPU adapter if any.
 *
 * @module
 */
import { helpText, parseFlags } from "../src/util/cli.ts";
import { parseBackendKind, selectBackend } from "../src/backend/select.ts";
import { GpuContext } from "../src/backend/webgpu/context.ts";
import { main } from "./main.ts";

await main(async () => {
  const spec = {
    backend: { type: "string", default: "auto", help: "auto | cpu | webgpu" },
    help: { type: "boolean", help: "show this help" },
  } as const;

  const flags = parseFlags(Deno.args, spec);
  if (flags.help) {
    console.log(helpText("deno task info [--backend auto|cpu|webgpu]", spec));
    Deno.exit(0);
  }
  const adapter = await GpuContext.adapter();
  console.log(
    `webgpu adapter: ${
      adapter
        ? `${adapter.info.description} (${
          adapter.info.isFallbackAdapter ? "software fallback" : "hardware"
        })`
        : "none"
    }`,
  );
  const { backend, reason } = await selectBackend(parseBackendKind(String(flags.backend)));
  console.log(`backend: ${reason}`);
  backend.dispose();
});
