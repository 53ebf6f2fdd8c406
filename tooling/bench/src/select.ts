/** What selection needs of a case: Redis and micro cases both have it. */
export interface Selectable {
  op: string;
  lib: string;
  vs?: string;
}

/**
 * Throws when a file's cases cannot be compared as written: two cases with the same op and lib, or a `vs` that names
 * no lib of its op (the ratio would be missing from the output without a word).
 */
export function checkCases(cases: readonly Selectable[], file: string, kind: 'cases' | 'micro'): void {
  const seen = new Set<string>();
  for (const { op, lib } of cases) {
    const key = JSON.stringify([op, lib]);
    if (seen.has(key)) throw new Error(`${file}: ${kind} has two cases with op "${op}" and lib "${lib}".`);
    seen.add(key);
  }
  for (const { op, lib, vs } of cases) {
    if (vs !== undefined && !seen.has(JSON.stringify([op, vs]))) {
      throw new Error(
        `${file}: ${kind} case "${lib}" of op "${op}" is compared to "${vs}", which is no case of that op.`,
      );
    }
  }
}

/**
 * The indexes of the cases to run: all of them without a filter; else those whose op, lib or package matches, plus
 * the case each is compared to (same op, its `vs` lib), so that every ratio printed still has its rival in the run.
 */
export function selectCases(cases: readonly Selectable[], packageName: string, filter?: RegExp): number[] {
  if (filter === undefined) return cases.map((_, index) => index);
  const chosen = new Set<number>();
  for (const [index, benchCase] of cases.entries()) {
    if (filter.test(benchCase.op) || filter.test(benchCase.lib) || filter.test(packageName))
      chosen.add(index);
  }
  for (const index of [...chosen]) {
    const wanted = cases[index];
    if (wanted?.vs === undefined) continue;
    const rival = cases.findIndex((other) => other.op === wanted.op && other.lib === wanted.vs);
    if (rival >= 0) chosen.add(rival);
  }
  return [...chosen].sort((a, b) => a - b);
}

export interface Indexed<T> {
  benchCase: T;
  /** Position in the definition's array, which is how a worker process finds the case. */
  index: number;
}

/** Groups the chosen cases by op, keeping the order in which ops first appear. */
export function groupByOp<T extends Selectable>(
  cases: readonly T[],
  indexes: readonly number[],
): Indexed<T>[][] {
  const groups = new Map<string, Indexed<T>[]>();
  for (const index of indexes) {
    const benchCase = cases[index];
    if (benchCase === undefined) continue;
    groups.set(benchCase.op, [...(groups.get(benchCase.op) ?? []), { benchCase, index }]);
  }
  return [...groups.values()];
}
