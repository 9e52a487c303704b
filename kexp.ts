// experiment: GL compile time of kernel variants (not committed)
import * as MM from "./kernels/matmul.ts";
Deno.env.set("MESA_SHADER_CACHE_DISABLE", "true");
const adapter = await navigator.gpu.requestAdapter();
const device = await adapter!.requestDevice();
export async function timeCompile(name: string, code: string, constants: Record<string, number> = {}, bindings = 5) {
  const t0 = performance.now();
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code });
  const p = device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main", constants } });
  const err = await device.popErrorScope();
  const entries: GPUBindGroupEntry[] = [];
  const layout = p.getBindGroupLayout(0);
  const ub = device.createBuffer({ size: 256, usage: GPUBufferUsage.UNIFORM });
  const sb = () => device.createBuffer({ size: 1024, usage: GPUBufferUsage.STORAGE });
  const info = await module.getCompilationInfo();
  // bind by reflection: try binding 0 uniform, 1..n storage
  for (let b = 0; b <= bindings; b++) entries.push({ binding: b, resource: { buffer: b === 0 ? ub : sb() } });
  device.pushErrorScope("validation");
  const bg = device.createBindGroup({ layout, entries });
  const enc = device.createCommandEncoder(); const pass = enc.beginComputePass(); pass.setPipeline(p); pass.setBindGroup(0, bg); pass.dispatchWorkgroups(1); pass.end();
  device.queue.submit([enc.finish()]); await device.queue.onSubmittedWorkDone();
  const err2 = await device.popErrorScope();
  console.log(name, ((performance.now() - t0) / 1000).toFixed(2) + " s", err ? err.message : "", err2 ? err2.message.slice(0, 300) : "", info.messages.map((m) => m.message).join(";"));
}
const none = { TRANS_A: 0, TRANS_B: 0, HAS_BIAS: 0, GELU: 0, HAS_PRE: 0, ACCUMULATE: 0 };
const gelu = { TRANS_A: 0, TRANS_B: 1, HAS_BIAS: 1, GELU: 1, HAS_PRE: 1, ACCUMULATE: 0 };
const which = Deno.args;
const mod = which.includes("--new") ? await import("./kernels/matmul.ts") : MM;
for (const w of which) {
  if (w === "simple") { await timeCompile("simple none", mod.MATMUL_SIMPLE, none); await timeCompile("simple gelu", mod.MATMUL_SIMPLE, gelu); }
  if (w === "tiled64") { await timeCompile("tiled64 none", mod.MATMUL_TILED_64, none); }
}
const header = MM.MATMUL_SIMPLE.split("var<workgroup> As")[0];
const NOWG = header + `
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let z = wid.z;
  let batch = z / P.splits;
  let split = z % P.splits;
  let baseA = P.off_a + batch * P.M * P.K;
  let baseB = P.off_b + batch * P.K * P.N;
  let kBegin = split * P.k_split;
  let kEnd = min(P.K, kBegin + P.k_split);
  let m = wid.y * 16u + lid.y;
  let n = wid.x * 16u + lid.x;
  var acc = 0.0;
  for (var k = kBegin; k < kEnd; k++) {
    acc = fma(loadA(baseA, m, k, kEnd), loadB(baseB, k, n, kEnd), acc);
  }
  storeOut(P.off_out + z * P.M * P.N, m, n, acc);
}
`;
if (which.includes("nowg")) { await timeCompile("nowg none", NOWG, none); await timeCompile("nowg gelu", NOWG, gelu); }
