import { labelValue, type SeriesLabels } from './labels.js';

type Node = Map<string, unknown>;

/**
 * Finds the series of a label combination with one Map lookup per label on the caller's
 * own strings. A joined string key would be built (and hashed) on every call; label values
 * are usually literals whose hash V8 already caches, so this path allocates nothing, and no
 * two combinations can collide whatever characters their values contain.
 */
export class SeriesIndex<Series> {
  /** Every series, in creation order (the exposition order). */
  readonly all: Series[] = [];
  private readonly root: Node = new Map();
  private only: Series | undefined;

  constructor(private readonly labelNames: readonly string[]) {}

  get size(): number {
    return this.all.length;
  }

  get(labels: object | undefined): Series | undefined {
    const names = this.labelNames;
    const last = names.length - 1;
    if (last < 0) return this.only;
    const bag = (labels ?? {}) as Readonly<Record<string, unknown>>;
    let node = this.root;
    for (let index = 0; index < last; index++) {
      const next = node.get(labelValue(bag[names[index]!])) as Node | undefined;
      if (next === undefined) return undefined;
      node = next;
    }
    return node.get(labelValue(bag[names[last]!])) as Series | undefined;
  }

  /** Adds a series under its normalised labels; the caller checked it is not there yet. */
  add(labels: SeriesLabels, series: Series): void {
    this.all.push(series);
    const names = this.labelNames;
    const last = names.length - 1;
    if (last < 0) {
      this.only = series;
      return;
    }
    let node = this.root;
    for (let index = 0; index < last; index++) {
      const value = labels[names[index]!]!;
      let next = node.get(value) as Node | undefined;
      if (next === undefined) {
        next = new Map();
        node.set(value, next);
      }
      node = next;
    }
    node.set(labels[names[last]!]!, series);
  }
}
