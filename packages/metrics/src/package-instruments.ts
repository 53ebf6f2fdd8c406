import type { Metrics, PackageInstruments } from './metrics.js';
import { assertOptions, metricName } from './validation.js';

/** `metrics.packageInstruments()` for any `Metrics`, real or no-op: names relative to `austa_<package>_`. */
export function packageInstrumentsOf(metrics: Metrics, packageName: string): PackageInstruments {
  const name = (suffix: string) => metricName(packageName, suffix);
  // Validates the package name now rather than at the first instrument.
  name('x');
  return Object.freeze({
    packageName,
    name,
    counter(options) {
      assertOptions(options, 'counter');
      return metrics.counter({ ...options, name: name(options.name) });
    },
    gauge(options) {
      assertOptions(options, 'gauge');
      return metrics.gauge({ ...options, name: name(options.name) });
    },
    histogram(options) {
      assertOptions(options, 'histogram');
      return metrics.histogram({ ...options, name: name(options.name) });
    },
  } satisfies PackageInstruments);
}
