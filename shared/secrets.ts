// Comparing secrets without leaking their content through timing.
const encoder = new TextEncoder();

export function timingSafeEqual(given: string, expected: string): boolean {
  const a = encoder.encode(given);
  const b = encoder.encode(expected);
  // Compare over the expected length whatever was given, so the time taken does
  // not reveal how many leading bytes matched.
  let diff = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) diff |= (a[i] ?? 0) ^ b[i];
  return diff === 0;
}
