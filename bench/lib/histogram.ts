/**
 * A latency histogram with bounded memory and ~1.5% relative error: exact microseconds below
 * 128 µs, then 64 sub-buckets per power of two (the HdrHistogram idea, in a few lines).
 * Recording is one array increment, so the load generator can afford it per message.
 */

const EXACT = 128;
const SUB_BUCKETS = 64;
const SUB_BITS = 6;
/** Enough buckets for 2^31 µs (about 36 minutes). */
const BUCKETS = EXACT + 25 * SUB_BUCKETS;

/** Summary of a latency distribution, all in microseconds. */
export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKETS);
  #count = 0;
  #sum = 0;
  #max = 0;

  /** Records one latency given in microseconds. */
  record(micros: number): void {
    const value = micros < 0 ? 0 : Math.min(Math.round(micros), 0x7fffffff);
    this.#counts[bucketOf(value)]! += 1;
    this.#count++;
    this.#sum += value;
    if (value > this.#max) this.#max = value;
  }

  reset(): void {
    this.#counts.fill(0);
    this.#count = 0;
    this.#sum = 0;
    this.#max = 0;
  }

  /** The value below which `fraction` (0–1) of the recorded latencies lie. */
  percentile(fraction: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil(fraction * this.#count));
    let seen = 0;
    for (let index = 0; index < BUCKETS; index++) {
      seen += this.#counts[index]!;
      if (seen >= rank) return Math.min(bucketValue(index), this.#max);
    }
    return this.#max;
  }

  summary(): LatencySummary {
    return {
      count: this.#count,
      p50: this.percentile(0.5),
      p90: this.percentile(0.9),
      p99: this.percentile(0.99),
      p999: this.percentile(0.999),
      max: this.#max,
      mean: this.#count === 0 ? 0 : this.#sum / this.#count,
    };
  }
}

function bucketOf(value: number): number {
  if (value < EXACT) return value;
  // Shift so the top SUB_BITS+1 bits remain: the mantissa lands in [64, 127].
  const shift = 31 - Math.clz32(value) - SUB_BITS;
  return EXACT + (shift - 1) * SUB_BUCKETS + ((value >>> shift) - SUB_BUCKETS);
}

/** The midpoint of a bucket, so percentiles are unbiased within the bucket's width. */
function bucketValue(index: number): number {
  if (index < EXACT) return index;
  const offset = index - EXACT;
  const shift = Math.floor(offset / SUB_BUCKETS) + 1;
  const mantissa = (offset % SUB_BUCKETS) + SUB_BUCKETS;
  return mantissa * 2 ** shift + 2 ** (shift - 1);
}
