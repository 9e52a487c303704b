/**
 * Tests of optional dependencies: OpenBLAS, the native kernels
 * (`native/build/libdbot_cpu.so`), a WebGPU adapter and the native libjpeg-turbo. Where one
 * is missing its tests are skipped, with the reason printed once per file — unless the
 * matching `DBOT_REQUIRE_OPENBLAS` / `DBOT_REQUIRE_NATIVE` / `DBOT_REQUIRE_WEBGPU` /
 * `DBOT_REQUIRE_TURBOJPEG` is `1` (CI sets them all), in which case they run and fail with
 * that reason.
 *
 * ```ts ignore
 * const blas = await requires("openblas");
 * blas.test("OpenBLAS sgemm() matches …", () => { … });
 * Deno.test({ name: "…", ignore: blas.ignore, fn: () => { blas.check(); … } });
 * ```
 *
 * @module
 */
import { loadOpenBlas } from "../src/backend/cpu/openblas.ts";
import { loadNativeKernels } from "../src/backend/cpu/native.ts";
import { GpuContext } from "../src/backend/webgpu/context.ts";
import { loadTurboJpeg, TURBOJPEG_APT_COMMAND } from "../src/data/jpeg_native.ts";

/** An optional dependency of some tests. */
export type Dependency = "openblas" | "native" | "webgpu" | "chromium" | "turbojpeg";

const INFO: Record<Dependency, { what: string; flag: string; install: string }> = {
  openblas: {
    what: "OpenBLAS",
    flag: "DBOT_REQUIRE_OPENBLAS",
    install: "apt-get install libopenblas0-pthread",
  },
  native: {
    what: "the native CPU kernels",
    flag: "DBOT_REQUIRE_NATIVE",
    install: "deno task build-native",
  },
  webgpu: {
    what: "a WebGPU adapter",
    flag: "DBOT_REQUIRE_WEBGPU",
    install: "apt-get install mesa-vulkan-drivers and set DENO_WEBGPU_BACKEND=vulkan",
  },
  turbojpeg: {
    what: "the native libjpeg-turbo (libturbojpeg)",
    flag: "DBOT_REQUIRE_TURBOJPEG",
    install: TURBOJPEG_APT_COMMAND,
  },
  chromium: {
    what: "Chromium (headless, for the browser page)",
    flag: "DBOT_REQUIRE_CHROMIUM",
    install: "apt-get install chromium (or set DBOT_CHROMIUM to a Chrome/Chromium binary)",
  },
};

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env
  }
}

/** Whether a dependency is here, and what its tests do when it is not. */
export class Requirement {
  /** Which dependency. */
  readonly dependency: Dependency;
  /** Null when the dependency is available, else why it is not. */
  readonly missing: string | null;
  /** The `DBOT_REQUIRE_*` flag for it is `1`: a missing dependency fails its tests. */
  readonly required: boolean;
  #told = false;

  /** Use {@link requires}. */
  constructor(dependency: Dependency, missing: string | null) {
    this.dependency = dependency;
    this.missing = missing;
    this.required = readEnv(INFO[dependency].flag) === "1";
  }

  /** The dependency is available. */
  get available(): boolean {
    return this.missing === null;
  }

  /**
   * For `Deno.test({ ignore })`: true when the dependency is missing and not required.
   * Reading it prints the reason (once per file) when it is true.
   */
  get ignore(): boolean {
    if (this.missing === null || this.required) return false;
    if (!this.#told) {
      this.#told = true;
      const { what, flag, install } = INFO[this.dependency];
      console.log(
        `skipping the tests that need ${what}: ${this.missing}. ` +
          `To run them: ${install}; ${flag}=1 makes them fail instead of skipping.`,
      );
    }
    return true;
  }

  /** Throws the reason when the dependency is missing (call first in the test body). */
  check(): void {
    if (this.missing === null) return;
    const { what, flag, install } = INFO[this.dependency];
    throw new Error(`${flag}=1 but ${what} is missing: ${this.missing} (${install})`);
  }

  /**
   * Registers a test that needs the dependency: skipped with the printed reason where it
   * is missing, failing with the reason when it is missing and required.
   */
  test(name: string, fn: (t: Deno.TestContext) => void | Promise<void>): void;
  /** As above, with a full test definition (`ignore` is combined with this one's). */
  test(def: Deno.TestDefinition): void;
  test(
    a: string | Deno.TestDefinition,
    fn?: (t: Deno.TestContext) => void | Promise<void>,
  ): void {
    const def: Deno.TestDefinition = typeof a === "string" ? { name: a, fn: fn! } : a;
    const body = def.fn;
    Deno.test({
      ...def,
      ignore: Boolean(def.ignore) || this.ignore,
      fn: (t) => {
        this.check();
        return body(t);
      },
    });
  }
}

function probeOpenBlas(): Requirement {
  const failures: string[] = [];
  let missing: string | null;
  try {
    missing = loadOpenBlas(failures)
      ? null
      : `no library loaded (tried ${
        failures.map((f) => f.slice(0, f.indexOf(": "))).join(", ")
      }; first error: ${failures[0]?.slice(0, 200)})`;
  } catch (e) {
    missing = (e as Error).message; // DBOT_OPENBLAS names a library that does not load
  }
  return new Requirement("openblas", missing);
}

function probeTurboJpeg(): Requirement {
  let missing: string | null;
  try {
    const t = loadTurboJpeg();
    missing = "reason" in t ? t.reason : null;
  } catch (e) {
    missing = (e as Error).message; // DBOT_TURBOJPEG names a library that does not load
  }
  return new Requirement("turbojpeg", missing);
}

function probeNative(): Requirement {
  const k = loadNativeKernels();
  return new Requirement("native", "reason" in k ? k.reason : null);
}

async function probeWebGpu(): Promise<Requirement> {
  const adapter = await GpuContext.adapter();
  return new Requirement(
    "webgpu",
    adapter
      ? null
      : typeof navigator === "undefined" || !("gpu" in navigator)
      ? "this runtime has no navigator.gpu"
      : "navigator.gpu.requestAdapter() found none",
  );
}

/** The Chromium binary the browser tests drive: `DBOT_CHROMIUM`, else `chromium` on the PATH. */
export function chromiumBinary(): string {
  return readEnv("DBOT_CHROMIUM") || "chromium";
}

async function probeChromium(): Promise<Requirement> {
  const bin = chromiumBinary();
  let missing: string | null;
  if (readEnv(INFO.chromium.flag) !== "1") {
    // Chromium compiles every WGSL pipeline on its software adapter: ~10 min on 2 cores, so a
    // plain `deno task test` does not pay it even where Chromium happens to be installed.
    return new Requirement(
      "chromium",
      "they run only when asked (about 10 minutes on a software adapter)",
    );
  }
  try {
    const r = await new Deno.Command(bin, { args: ["--version"], stdout: "piped", stderr: "null" })
      .output();
    missing = r.success ? null : `${bin} --version exited with ${r.code}`;
  } catch (e) {
    missing = `cannot run ${bin}: ${(e as Error).message}`;
  }
  return new Requirement("chromium", missing);
}

const probes = new Map<Dependency, Promise<Requirement>>();

/** Probes `dependency` once per file (loading the library or requesting an adapter). */
export function requires(dependency: Dependency): Promise<Requirement> {
  let p = probes.get(dependency);
  if (!p) {
    p = dependency === "openblas"
      ? Promise.resolve(probeOpenBlas())
      : dependency === "native"
      ? Promise.resolve(probeNative())
      : dependency === "turbojpeg"
      ? Promise.resolve(probeTurboJpeg())
      : dependency === "chromium"
      ? probeChromium()
      : probeWebGpu();
    probes.set(dependency, p);
  }
  return p;
}
