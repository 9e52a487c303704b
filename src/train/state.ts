/**
 * A pre-training run's resume state: student, teacher, AdamW moments and the position in
 * the schedule, saved at the end of every epoch (and mid-epoch on an interrupt) through
 * `io/run_state.ts` (one atomic file). `--resume` continues from it bit-identically.
 *
 * @module
 */
import type { Backend } from "../backend/backend.ts";
import { readRunState, readRunStateMeta, writeRunState } from "../io/run_state.ts";
import type { TeacherConfig } from "../models/teacher.ts";
import type { Trainee } from "./stages.ts";

/** Where a run stands (saved as the state's metadata). */
export interface RunPosition {
  /** The epoch to continue in. */
  epoch: number;
  /** The iteration of `epoch` to continue at (0 unless saved mid-epoch). */
  iter: number;
  /** Optimiser steps taken. */
  step: number;
  /** Steps skipped for a non-finite loss. */
  skipped: number;
  /** k-NN top-1 of the random-init student. */
  knnInit: number;
  /** k-NN top-1 after each finished stage. */
  perStage: number[];
}

/** A state read back: position, teacher and the tensors to load. */
export interface SavedState extends RunPosition {
  /** The teacher's description. */
  teacherCfg: TeacherConfig;
  /** AdamW's step counter. */
  optStep: number;
  /** Student weights by name. */
  student: Map<string, Float32Array>;
  /** Teacher weights by name (empty for teachers without weights). */
  teacher: Map<string, Float32Array>;
  /** AdamW moments (flat). */
  m: Float32Array;
  /** AdamW second moments (flat). */
  v: Float32Array;
}

/** Writes the state of `t` at `pos` to `path` atomically. */
export async function saveState(
  path: string,
  be: Backend,
  t: Trainee,
  pos: RunPosition,
): Promise<void> {
  const tp = t.model.teacher.params;
  await writeRunState(path, {
    student: await t.model.student.toHost(),
    teacher: tp ? await tp.toHost() : new Map(),
    adamw: new Map([
      ["m", (await be.download(t.opt.m)) as Float32Array],
      ["v", (await be.download(t.opt.v)) as Float32Array],
    ]),
  }, { ...pos, teacherCfg: t.model.teacher.cfg, optStep: t.opt.step });
}

/** Reads the state at `path`; null when there is none. */
export async function readState(path: string): Promise<SavedState | null> {
  const s = await readRunState(path);
  if (!s) return null;
  const meta = s.meta as unknown as SavedState;
  return {
    ...meta,
    iter: meta.iter ?? 0,
    skipped: meta.skipped ?? 0,
    student: s.groups.student ?? new Map(),
    teacher: s.groups.teacher ?? new Map(),
    m: s.groups.adamw.get("m")!,
    v: s.groups.adamw.get("v")!,
  };
}

/** Loads a saved state into `t` (built with the saved teacher). */
export function loadState(be: Backend, t: Trainee, s: SavedState): void {
  t.model.student.load(s.student);
  t.model.teacher.params?.load(s.teacher);
  be.upload(t.opt.m, s.m);
  be.upload(t.opt.v, s.v);
  t.opt.step = s.optStep;
}

/** "saved at epoch E[, iteration I], step S" from the header of `path`; null when there is none. */
export async function stateSummary(path: string): Promise<string | null> {
  const meta = await readRunStateMeta(path) as Partial<RunPosition> | null;
  if (!meta || meta.epoch === undefined) return null;
  const iter = meta.iter ? `, iteration ${meta.iter}` : "";
  return `saved at epoch ${meta.epoch}${iter}, step ${meta.step}`;
}
