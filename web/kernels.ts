/**
 * Every WGSL kernel of `kernels/` in every override variant the WebGPU backend uses,
 * compiled into a pipeline on one device: the check that runs under Deno's WebGPU (wgpu /
 * naga) and under Chromium's (Dawn / Tint), which disagree at the edges (Tint refused the
 * literal `-3.40282347e38` that naga accepted).
 *
 * Kernels are found, not listed: every exported string of `kernels/*.ts` with a `@compute`
 * entry point. Their `override` declarations are read from the source; each gets the
 * values the backend passes (`OVERRIDE_VALUES`, from `src/backend/webgpu/ops/`; matmul's
 * flags as the model combines them), and a new override without an entry there fails the
 * check, so it cannot go unchecked.
 *
 * @module
 */
import * as elementwise from "../kernels/elementwise.ts";
import * as fill from "../kernels/fill.ts";
import * as heads from "../kernels/heads.ts";
import * as layernorm from "../kernels/layernorm.ts";
import * as losses from "../kernels/losses.ts";
import * as matmul from "../kernels/matmul.ts";
import * as optim from "../kernels/optim.ts";
import * as relpos from "../kernels/relpos.ts";
import * as rows from "../kernels/rows.ts";
import * as softmax from "../kernels/softmax.ts";
import type { GpuContext, KernelSpec } from "../src/backend/webgpu/context.ts";
import { inPlaceSpec } from "../src/backend/webgpu/bindings.ts";

const MODULES: Record<string, Record<string, unknown>> = {
  elementwise,
  fill,
  heads,
  layernorm,
  losses,
  matmul,
  optim,
  relpos,
  rows,
  softmax,
};

/**
 * The values the backend gives each non-bool override (a bool gets both): `WG` (layernorm's row workgroup,
 * `rowWorkgroup()`), `TPR` (softmax's threads per row, `threadsPerRow()`); matmul's flags
 * are below.
 */
export const OVERRIDE_VALUES: Readonly<Record<string, readonly number[]>> = Object.freeze({
  WG: [64, 128, 256],
  TPR: [32, 64, 128, 256],
});

/**
 * Matmul's six flags are not all combined: the model asks for three transposes (`x·Wᵀ`,
 * `dY·W`, `dYᵀ·X`, and the same for attention) and six epilogues (none, accumulate into a
 * gradient, bias, bias + GELU, bias + GELU keeping the pre-activation, bias accumulated into
 * a frozen encoder's residual stream). The split-K
 * reduction gets no transposes. `tests/web_test.ts` checks that a training step and the
 * k-NN features ask for nothing outside this list.
 */
/**
 * The kernels an op runs in place (`KernelSpec.inPlace` in `src/backend/webgpu/ops/`):
 * their in-place variants (one `read_write` binding for out and input) are built too.
 */
const IN_PLACE: Readonly<Record<string, readonly (readonly [number, number])[]>> = {
  "elementwise.ADD": [[0, 1]],
  "elementwise.GELU": [[0, 1]],
  "elementwise.GELU_BACKWARD": [[0, 1]],
  "elementwise.SCALE_ROWS": [[0, 1]],
  "elementwise.SCALE_COLS": [[0, 1]],
  "relpos.RELPOS_BIAS": [[0, 1]],
  "softmax.SOFTMAX": [[0, 1]],
  "softmax.SOFTMAX_BACKWARD": [[0, 1]],
  "layernorm.LAYERNORM": [[0, 3]],
  "layernorm.STANDARDIZE_ROWS": [[0, 1]],
};

const MATMUL_FLAGS = ["TRANS_A", "TRANS_B", "HAS_BIAS", "GELU", "HAS_PRE", "ACCUMULATE"];
const TRANSPOSES = [[0, 0], [0, 1], [1, 0]];
const EPILOGUES = [
  [0, 0, 0, 0],
  [0, 0, 0, 1],
  [1, 0, 0, 0],
  [1, 1, 0, 0],
  [1, 1, 1, 0],
  [1, 0, 0, 1],
];

function matmulCombos(label: string): Record<string, number>[] {
  const transposes = label === "matmul.MATMUL_SPLITK_REDUCE" ? [[0, 0]] : TRANSPOSES;
  return transposes.flatMap((t) =>
    EPILOGUES.map((e) => Object.fromEntries(MATMUL_FLAGS.map((f, i) => [f, [...t, ...e][i]])))
  );
}

/** One pipeline to build: a kernel and its override constants. */
export interface KernelVariant {
  /** The kernel (`module.EXPORT` as label). */
  spec: KernelSpec;
  /** Override constants. */
  constants: Record<string, number>;
}

/** Every kernel of `kernels/` with a `@compute` entry point, labelled `module.EXPORT`. */
export function computeKernels(): KernelSpec[] {
  const out: KernelSpec[] = [];
  for (const label of Object.keys(IN_PLACE)) {
    const [mod, name] = label.split(".");
    if (typeof MODULES[mod]?.[name] !== "string") {
      throw new RangeError(`IN_PLACE names "${label}", which kernels/ does not export`);
    }
  }
  for (const [mod, exports] of Object.entries(MODULES)) {
    for (const [name, v] of Object.entries(exports)) {
      if (typeof v !== "string" || !v.includes("@compute")) continue;
      // storage buffers are bindings 1..n (binding 0 is the uniform params)
      const storageBindings = (v.match(/var<storage\b/g) ?? []).length;
      const spec = { label: `${mod}.${name}`, code: v, storageBindings };
      out.push(spec);
      const inPlace = IN_PLACE[spec.label];
      if (inPlace) out.push(inPlaceSpec({ ...spec, inPlace }));
    }
  }
  return out;
}

/** `override NAME: bool|u32|i32|f32` declarations of `code`, in order. */
export function overridesOf(code: string): { name: string; type: string }[] {
  return [...code.matchAll(/^\s*override\s+(\w+)\s*:\s*(\w+)/gm)].map((m) => ({
    name: m[1],
    type: m[2],
  }));
}

/** Every (kernel, override constants) pipeline the backend can ask for. */
export function kernelVariants(): KernelVariant[] {
  const out: KernelVariant[] = [];
  for (const spec of computeKernels()) {
    const names = overridesOf(spec.code).map((o) => o.name);
    if (names.join() === MATMUL_FLAGS.join()) {
      for (const constants of matmulCombos(spec.label)) out.push({ spec, constants });
      continue;
    }
    let combos: Record<string, number>[] = [{}];
    for (const { name, type } of overridesOf(spec.code)) {
      const values = type === "bool" ? [0, 1] : OVERRIDE_VALUES[name];
      if (!values) {
        throw new RangeError(
          `Cannot check kernel "${spec.label}": its override ${name}: ${type} has no values in ` +
            "OVERRIDE_VALUES (web/kernels.ts); add the values the backend passes",
        );
      }
      combos = combos.flatMap((c) => values.map((v) => ({ ...c, [name]: v })));
    }
    for (const constants of combos) out.push({ spec, constants });
  }
  return out;
}

/** What {@link compileAllKernels} found. */
export interface KernelReport {
  /** Kernels checked. */
  kernels: number;
  /** Pipelines built (kernels × override variants). */
  pipelines: number;
  /** Compile or validation errors, one string per failing pipeline group (empty: all good). */
  errors: string[];
  /** Wall seconds. */
  seconds: number;
}

/**
 * Builds every variant's pipeline on `ctx` (one at a time, `onProgress` after each) and
 * collects the compiler's and validator's errors.
 */
export async function compileAllKernels(
  ctx: GpuContext,
  o: { onProgress?: (done: number, total: number, label: string) => void } = {},
): Promise<KernelReport> {
  const t0 = performance.now();
  const variants = kernelVariants();
  const errors: string[] = [];
  for (const [i, { spec, constants }] of variants.entries()) {
    ctx.pipeline(spec, constants);
    try {
      await ctx.check();
    } catch (e) {
      errors.push((e as Error).message);
    }
    o.onProgress?.(i + 1, variants.length, spec.label);
  }
  return {
    kernels: new Set(variants.map((v) => v.spec.label)).size,
    pipelines: variants.length,
    errors,
    seconds: (performance.now() - t0) / 1000,
  };
}
