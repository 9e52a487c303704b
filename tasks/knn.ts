/**
 * `deno task knn`: weighted k-NN accuracy of test features against train
 * features, both as `deno task embed` writes them. Prints one JSON line on
 * stdout (`{"top1", "top5", "k", "train", "test"}`); progress goes to stderr.
 *
 * @module
 */
import { loadGemm } from "../src/backend/cpu/gemm.ts";
import { KNN_DEFAULT_K, KNN_DEFAULT_TEMPERATURE, knnClassify } from "../src/eval/knn.ts";
import { readFeatures } from "../src/eval/knn_file.ts";
import { parseTaskFlags, positiveInt } from "./flags.ts";
import { main } from "./main.ts";

await main(async () => {
  const spec = {
    train: { type: "string", help: "train features (.safetensors: features [N, D], labels [N])" },
    test: { type: "string", help: "test features (same layout and D)" },
    k: { type: "string", default: String(KNN_DEFAULT_K), help: "neighbours per test feature" },
    temperature: {
      type: "string",
      default: String(KNN_DEFAULT_TEMPERATURE),
      help: "vote weight exp(sim / T)",
    },
  } as const;
  const flags = parseTaskFlags(
    "deno task knn --train FEATS.safetensors --test FEATS.safetensors [--k 20]",
    spec,
    { required: ["train", "test"] },
  );
  const k = positiveInt(flags.k, "k");
  const temperature = Number(flags.temperature);
  if (!(temperature > 0) || !Number.isFinite(temperature)) {
    throw new TypeError(`Cannot use --temperature ${flags.temperature}: give a positive number`);
  }
  const [train, test] = await Promise.all([
    readFeatures(String(flags.train)),
    readFeatures(String(flags.test)),
  ]);
  if (train.dim !== test.dim) {
    throw new RangeError(
      `Cannot compare train and test features of different sizes: D is ${train.dim} and ${test.dim}`,
    );
  }
  const gemm = loadGemm();
  console.error(
    `knn: ${test.count} test vs ${train.count} train features, D ${train.dim}, k ${k}, ` +
      `T ${temperature}, ${gemm.name}`,
  );
  const t0 = performance.now();
  const r = knnClassify(train, test, { dim: train.dim, k, temperature, gemm });
  console.error(`knn: ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  console.log(
    JSON.stringify({ top1: r.top1, top5: r.top5, k: r.k, train: train.count, test: test.count }),
  );
});
