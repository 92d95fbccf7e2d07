// Exponential backoff with full jitter (AWS's "full jitter"): spreads retries
// of many messages so a recovering Twilio is not hit by a synchronized wave.
export interface BackoffPolicy {
  baseMs: number;
  capMs: number;
}

export const SEND_BACKOFF: BackoffPolicy = { baseMs: 30_000, capMs: 3_600_000 };
export const RENDER_BACKOFF: BackoffPolicy = { baseMs: 60_000, capMs: 3_600_000 };

/** Delay before retry number `attempt` (1 = the first retry); `random` in [0, 1). */
export function backoffMs(policy: BackoffPolicy, attempt: number, random: () => number): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.max(0, attempt - 1));
  // At least a second, so a retry never lands in the same processor run.
  return Math.max(1_000, Math.floor(random() * ceiling));
}
