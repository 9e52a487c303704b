/**
 * `deno task info`: which backend `auto` picks on this machine and why, the
 * CPU GEMM in use, and the WebGPU adapter if any; then the details behind that line
 * (library paths, loader errors); and the JPEG decoder folders and shards use.
 *
 * @module
 */
import { GpuContext } from "../src/backend/webgpu/context.ts";
import { jpegDecoder } from "../src/data/jpeg.ts";
import { BACKEND_FLAG, backendFromFlags, NATIVE_LIB_FLAG, parseTaskFlags } from "./flags.ts";
import { main } from "./main.ts";

await main(async () => {
  const flags = parseTaskFlags("deno task info [--backend auto|cpu|webgpu]", {
    ...BACKEND_FLAG,
    ...NATIVE_LIB_FLAG,
  });
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
  // info prints the details itself: not again through --debug
  const { backend, reason, facts } = await backendFromFlags({ ...flags, debug: false });
  console.log(`backend: ${reason}`);
  // (the adapter has its own line above)
  for (const d of facts.details) if (!d.startsWith("WebGPU adapter:")) console.log(`  ${d}`);
  backend.dispose();
  const jpeg = jpegDecoder();
  console.log(`jpeg decoder: ${jpeg.name}${jpeg.hint ? ` (${jpeg.hint})` : ""}`);
});
