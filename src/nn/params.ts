/**
 * Parameters from one spec table: init, weight decay, layer ids, checkpoint
 * names and gradient buffers are all derived from {@link ParamSpec} lists.
 *
 * Trainable parameters live in ONE flat f32 buffer (and their gradients in
 * another with the same offsets) so AdamW, the gradient norm and zeroing are
 * one dispatch each; frozen ones (sin-cos position embeddings) in a second.
 *
 * @module
 */
import type { Backend, Tensor } from "../backend/backend.ts";
import { freeTensors, view } from "../backend/backend.ts";
import type { Rng } from "../util/rng.ts";

/** How a parameter is initialised (DBOT_SPEC.md "Initialisation"). */
export type Init =
  | { kind: "xavier"; fanIn: number; fanOut: number }
  | { kind: "uniform"; bound: number }
  | { kind: "normal"; std: number }
  | { kind: "zeros" }
  | { kind: "ones" }
  | { kind: "sincos"; grid: number; dim: number }
  | { kind: "constant"; value: number }
  /** timm `trunc_normal_(std)`: N(0, std²) redrawn outside [−2, 2], then times `scale` (default 1). */
  | { kind: "truncNormal"; std: number; scale?: number };

/** One row of the parameter table. */
export interface ParamSpec {
  /** Checkpoint name (timm / reference dBOT). */
  readonly name: string;
  /** PyTorch layout. */
  readonly shape: readonly number[];
  /** Initialiser. */
  readonly init: Init;
  /** AdamW weight decay applies (not for 1-D params and biases). */
  readonly decay: boolean;
  /** Layer id for layer-wise LR decay: 0 embeddings, k+1 block k, depth+1 the rest. */
  readonly layerId: number;
  /** False for fixed buffers (sin-cos position embeddings). */
  readonly trainable: boolean;
}

/** A trainable parameter row, with decay by the reference rule (ndim > 1 and not a bias). */
export function param(
  name: string,
  shape: readonly number[],
  init: Init,
  layerId: number,
): ParamSpec {
  const decay = shape.length > 1 && !name.endsWith(".bias");
  return { name, shape, init, decay, layerId, trainable: true };
}

/** Linear `weight [out, in]` (xavier-uniform) and `bias [out]` (zeros) rows. */
export function linearParams(
  name: string,
  inF: number,
  outF: number,
  layerId: number,
): ParamSpec[] {
  return [
    param(`${name}.weight`, [outF, inF], { kind: "xavier", fanIn: inF, fanOut: outF }, layerId),
    param(`${name}.bias`, [outF], { kind: "zeros" }, layerId),
  ];
}

/** LayerNorm `weight` (ones) and `bias` (zeros) rows. */
export function layernormParams(name: string, C: number, layerId: number): ParamSpec[] {
  return [
    param(`${name}.weight`, [C], { kind: "ones" }, layerId),
    param(`${name}.bias`, [C], { kind: "zeros" }, layerId),
  ];
}

/** Rows of one pre-norm transformer block named `prefix` (e.g. `blocks.3`). */
export function blockParams(
  prefix: string,
  D: number,
  hidden: number,
  layerId: number,
): ParamSpec[] {
  return [
    ...layernormParams(`${prefix}.norm1`, D, layerId),
    ...linearParams(`${prefix}.attn.qkv`, D, 3 * D, layerId),
    ...linearParams(`${prefix}.attn.proj`, D, D, layerId),
    ...layernormParams(`${prefix}.norm2`, D, layerId),
    ...linearParams(`${prefix}.mlp.fc1`, D, hidden, layerId),
    ...linearParams(`${prefix}.mlp.fc2`, hidden, D, layerId),
  ];
}

/**
 * Fixed 2-D sin-cos position embedding `[1 + G·G, D]` (row 0 = cls = zeros).
 * Token `h·G + w`; channels `[0, D/2)` encode the column w, `[D/2, D)` the row h;
 * each half is `[sin(pos·ω), cos(pos·ω)]`, `ω_k = 1/10000^(k/(D/4))` (MAE code).
 */
export function sincosPosEmbed(grid: number, D: number): Float32Array {
  const out = new Float32Array((1 + grid * grid) * D);
  const quarter = D / 4;
  for (let h = 0; h < grid; h++) {
    for (let w = 0; w < grid; w++) {
      const row = (1 + h * grid + w) * D;
      for (let k = 0; k < quarter; k++) {
        const omega = 1 / Math.pow(10000, k / quarter);
        out[row + k] = Math.sin(w * omega);
        out[row + quarter + k] = Math.cos(w * omega);
        out[row + 2 * quarter + k] = Math.sin(h * omega);
        out[row + 3 * quarter + k] = Math.cos(h * omega);
      }
    }
  }
  return out;
}

/** Host values for one spec row, drawn from `rng`. */
export function initValues(spec: ParamSpec, rng: Rng): Float32Array {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const init = spec.init;
  switch (init.kind) {
    case "zeros":
      return new Float32Array(n);
    case "ones":
      return new Float32Array(n).fill(1);
    case "xavier": {
      const bound = Math.sqrt(6 / (init.fanIn + init.fanOut));
      return rng.uniformArray(n, -bound, bound);
    }
    case "uniform":
      return rng.uniformArray(n, -init.bound, init.bound);
    case "normal": {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = init.std * rng.normal();
      return out;
    }
    case "sincos":
      return sincosPosEmbed(init.grid, init.dim);
    case "constant":
      return new Float32Array(n).fill(init.value);
    case "truncNormal": {
      const out = new Float32Array(n);
      const scale = init.scale ?? 1;
      for (let i = 0; i < n; i++) {
        let v = init.std * rng.normal();
        while (v < -2 || v > 2) v = init.std * rng.normal();
        out[i] = v * scale;
      }
      return out;
    }
  }
}

/** Parameters of one model on one backend: flat values, flat gradients, views by name. */
export class ParamSet {
  /** The table this set was built from. */
  readonly specs: readonly ParamSpec[];
  /** All trainable values, flat. */
  readonly params: Tensor;
  /** Their gradients (same offsets), or null for a frozen model (teacher). */
  readonly grads: Tensor | null;
  /** Frozen buffers (position embeddings), flat. */
  readonly buffers: Tensor;
  readonly #where = new Map<string, { trainable: boolean; offset: number; spec: ParamSpec }>();
  readonly #be: Backend;

  /** Allocates the flat buffers for `specs` on `be` (zeros until {@link ParamSet.init}). */
  constructor(be: Backend, specs: readonly ParamSpec[], opts: { grads: boolean; label: string }) {
    this.#be = be;
    this.specs = specs;
    let nTrain = 0;
    let nFrozen = 0;
    for (const s of specs) {
      if (this.#where.has(s.name)) throw new RangeError(`Duplicate parameter name "${s.name}"`);
      const size = s.shape.reduce((a, b) => a * b, 1);
      this.#where.set(s.name, {
        trainable: s.trainable,
        offset: s.trainable ? nTrain : nFrozen,
        spec: s,
      });
      if (s.trainable) nTrain += size;
      else nFrozen += size;
    }
    this.params = be.tensor([nTrain], "f32", `${opts.label}.params`);
    this.grads = opts.grads ? be.tensor([nTrain], "f32", `${opts.label}.grads`) : null;
    this.buffers = be.tensor([nFrozen], "f32", `${opts.label}.buffers`);
  }

  /** Frees the flat buffers (the set is unusable afterwards). */
  dispose(): void {
    freeTensors(this.#be, [this.params, this.grads, this.buffers]);
  }

  /** Number of trainable scalars. */
  get count(): number {
    return this.params.size;
  }

  /** Whether `name` is in the table. */
  has(name: string): boolean {
    return this.#where.has(name);
  }

  /** The value view of `name`. */
  get(name: string): Tensor {
    const w = this.#lookup(name);
    return view(w.trainable ? this.params : this.buffers, w.offset, w.spec.shape);
  }

  /** The gradient view of `name` (trainable parameters of a set with gradients). */
  grad(name: string): Tensor {
    const w = this.#lookup(name);
    if (!w.trainable || !this.grads) {
      throw new RangeError(`Parameter "${name}" has no gradient buffer`);
    }
    return view(this.grads, w.offset, w.spec.shape);
  }

  /** Initialises every row from its spec, drawing in table order from `rng`. */
  init(rng: Rng): void {
    for (const s of this.specs) this.#be.upload(this.get(s.name), initValues(s, rng));
  }

  /** Uploads host values by name; every name must be known and shapes must match. */
  load(values: ReadonlyMap<string, Float32Array>): void {
    for (const [name, data] of values) {
      const t = this.get(name);
      if (data.length !== t.size) {
        throw new RangeError(
          `Cannot load "${name}": expected ${t.size} values for shape [${t.shape}] but got ${data.length}`,
        );
      }
      this.#be.upload(t, data);
    }
  }

  /** Downloads every row (trainable and frozen) by name. */
  async toHost(): Promise<Map<string, Float32Array>> {
    const flat = (await this.#be.download(this.params)) as Float32Array;
    const frozen = (await this.#be.download(this.buffers)) as Float32Array;
    const out = new Map<string, Float32Array>();
    for (const s of this.specs) {
      const w = this.#where.get(s.name)!;
      const size = s.shape.reduce((a, b) => a * b, 1);
      out.set(s.name, (w.trainable ? flat : frozen).slice(w.offset, w.offset + size));
    }
    return out;
  }

  /** Downloads every gradient by name. */
  async gradsToHost(): Promise<Map<string, Float32Array>> {
    if (!this.grads) throw new RangeError("This parameter set has no gradients");
    const flat = (await this.#be.download(this.grads)) as Float32Array;
    const out = new Map<string, Float32Array>();
    for (const s of this.specs) {
      if (!s.trainable) continue;
      const w = this.#where.get(s.name)!;
      out.set(s.name, flat.slice(w.offset, w.offset + s.shape.reduce((a, b) => a * b, 1)));
    }
    return out;
  }

  /**
   * The AdamW segment tables: one segment per trainable row, `offsets [S+1]` and
   * `hyper [S, 2] = (lrScale(spec), decay ? weightDecay : 0)`.
   */
  adamwTables(
    weightDecay: number,
    lrScale: (spec: ParamSpec) => number = () => 1,
  ): { offsets: Int32Array; hyper: Float32Array } {
    const train = this.specs.filter((s) => s.trainable);
    const offsets = new Int32Array(train.length + 1);
    const hyper = new Float32Array(train.length * 2);
    train.forEach((s, i) => {
      offsets[i] = this.#where.get(s.name)!.offset;
      hyper[2 * i] = lrScale(s);
      hyper[2 * i + 1] = s.decay ? weightDecay : 0;
    });
    offsets[train.length] = this.params.size;
    return { offsets, hyper };
  }

  #lookup(name: string): { trainable: boolean; offset: number; spec: ParamSpec } {
    const w = this.#where.get(name);
    if (!w) throw new RangeError(`Unknown parameter "${name}"`);
    return w;
  }
}
