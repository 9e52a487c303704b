/**
 * What a dBOT student's head is to the model: the asymmetric decoder
 * (`asymmetric_decoder.ts`) or the symmetric student's `lm_head` (`symmetric_student.ts`).
 *
 * @module
 */
import type { Tensor } from "../backend/backend.ts";

/**
 * What turns the student encoder's output into predictions, and back: the asymmetric
 * decoder (`AsymmetricHead`) or the symmetric student's `lm_head` (`SymmetricHead`).
 */
export interface StudentHead {
  /** Records `pred [B, 1+L, Dt]` from the encoder output. */
  forward(encOut: Tensor, pred: Tensor): void;
  /** Records the head's backward from `dpred` into its parameter gradients; returns ∂L/∂encOut. */
  backward(dpred: Tensor): Tensor;
  /** Frees its buffers. */
  dispose(): void;
}
