/**
 * A sorted set of distinct BigInts with the queries the allocator needs, each O(log n):
 * membership, rank (how many members lie below a value) and "first non-member at or after x".
 *
 * The last one rests on a property of sorted distinct integers: `values[i] - i` never decreases,
 * and it stays constant exactly along a run of consecutive integers. Finding where a run ends is
 * therefore a binary search, so a pool of 2^64 addresses with 100,000 in use costs the same few
 * dozen comparisons as a /24.
 */
export class SortedBigIntSet {
  #values: bigint[] = [];

  static from(values: Iterable<bigint>): SortedBigIntSet {
    const set = new SortedBigIntSet();
    set.#values = [...new Set(values)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return set;
  }

  get size(): number {
    return this.#values.length;
  }

  /** Index of the first member >= value. */
  lowerBound(value: bigint): number {
    let low = 0;
    let high = this.#values.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.#values[middle] as bigint) < value) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  has(value: bigint): boolean {
    return this.#values[this.lowerBound(value)] === value;
  }

  add(value: bigint): void {
    const index = this.lowerBound(value);
    if (this.#values[index] !== value) this.#values.splice(index, 0, value);
  }

  delete(value: bigint): void {
    const index = this.lowerBound(value);
    if (this.#values[index] === value) this.#values.splice(index, 1);
  }

  /** Members in [first, last]. */
  countBetween(first: bigint, last: bigint): number {
    return this.lowerBound(last + 1n) - this.lowerBound(first);
  }

  /** The smallest non-member >= value. */
  firstAbsentFrom(value: bigint): bigint {
    const start = this.lowerBound(value);
    if (this.#values[start] !== value) return value;
    let low = start;
    let high = this.#values.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      // In the run exactly when the gap in value equals the gap in index. One BigInt operation
      // per step: a gap too large for a double to hold exactly is also far larger than any index.
      if (Number((this.#values[middle] as bigint) - value) === middle - start) low = middle;
      else high = middle - 1;
    }
    return (this.#values[low] as bigint) + 1n;
  }

  /** The smallest member >= value, if any. */
  firstMemberFrom(value: bigint): bigint | undefined {
    return this.#values[this.lowerBound(value)];
  }
}
