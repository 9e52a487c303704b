/**
 * Token features as colours: the top three principal components of the teacher's patch
 * features, fitted once per picture, map teacher and student tokens alike to RGB — so equal
 * colours mean equal features, and a student that predicts its teacher well paints the same
 * picture.
 *
 * @module
 */

/** The `k` leading principal directions `[k, D]` of `x [n, D]` (centred by `mean [D]`). */
export function principalAxes(x: Float32Array, { n, D, k }: { n: number; D: number; k: number }): {
  mean: Float64Array;
  axes: Float64Array;
} {
  const mean = new Float64Array(D);
  for (let i = 0; i < n; i++) for (let d = 0; d < D; d++) mean[d] += x[i * D + d] / n;
  // covariance [D, D]
  const cov = new Float64Array(D * D);
  const row = new Float64Array(D);
  for (let i = 0; i < n; i++) {
    for (let d = 0; d < D; d++) row[d] = x[i * D + d] - mean[d];
    for (let a = 0; a < D; a++) {
      const ra = row[a];
      for (let b = 0; b < D; b++) cov[a * D + b] += ra * row[b];
    }
  }
  // power iteration with deflation: k is 3 and D ≤ a few hundred
  const axes = new Float64Array(k * D);
  const v = new Float64Array(D);
  const w = new Float64Array(D);
  for (let c = 0; c < k; c++) {
    for (let d = 0; d < D; d++) v[d] = Math.sin(1 + d * (c + 1)); // fixed start: no RNG
    for (let it = 0; it < 200; it++) {
      for (let a = 0; a < D; a++) {
        let s = 0;
        for (let b = 0; b < D; b++) s += cov[a * D + b] * v[b];
        w[a] = s;
      }
      for (let p = 0; p < c; p++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += w[d] * axes[p * D + d];
        for (let d = 0; d < D; d++) w[d] -= dot * axes[p * D + d];
      }
      let norm = 0;
      for (let d = 0; d < D; d++) norm += w[d] * w[d];
      norm = Math.sqrt(norm);
      if (norm === 0) break;
      for (let d = 0; d < D; d++) v[d] = w[d] / norm;
    }
    axes.set(v, c * D);
  }
  return { mean, axes };
}

/**
 * RGB bytes `[n, 3]` of every row of each of `sets` (`[n, D]` each), by projection on the
 * three principal axes of `sets[0]`, scaled to [0, 255] by `sets[0]`'s range per axis.
 */
export function pcaColours(sets: Float32Array[], D: number): Uint8ClampedArray[] {
  const n0 = sets[0].length / D;
  const { mean, axes } = principalAxes(sets[0], { n: n0, D, k: 3 });
  const project = (x: Float32Array) => {
    const n = x.length / D;
    const p = new Float64Array(n * 3);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += (x[i * D + d] - mean[d]) * axes[c * D + d];
        p[i * 3 + c] = s;
      }
    }
    return p;
  };
  const proj = sets.map(project);
  const lo = [Infinity, Infinity, Infinity];
  const hi = [-Infinity, -Infinity, -Infinity];
  for (let i = 0; i < n0; i++) {
    for (let c = 0; c < 3; c++) {
      lo[c] = Math.min(lo[c], proj[0][i * 3 + c]);
      hi[c] = Math.max(hi[c], proj[0][i * 3 + c]);
    }
  }
  return proj.map((p) => {
    const out = new Uint8ClampedArray(p.length);
    for (let i = 0; i < p.length; i++) {
      const c = i % 3;
      out[i] = Math.round((255 * (p[i] - lo[c])) / Math.max(hi[c] - lo[c], 1e-12));
    }
    return out;
  });
}
