import { createRequire } from 'node:module';

/** sockit's C addons (native/), built by `npm install` (scripts/build-native.mjs) into native/build. */
export type NativeAddonName =
  | 'sockit_spawn'
  | 'sockit_splice'
  | 'sockit_forward'
  | 'sockit_xxhash'
  | 'sockit_seal';

const loaded = new Map<NativeAddonName, unknown>();

/**
 * One of sockit's addons, loaded once per process, or null where it is not there: not Linux, not
 * built (no compiler), failing to load (no pidfd_open, say), or SOCKIT_NO_NATIVE=1, which behaves
 * as where it did not build so that the tests run each fallback too. Every caller has one.
 */
export function loadNative<T>(name: NativeAddonName): T | null {
  if (loaded.has(name)) return loaded.get(name) as T | null;
  let addon: T | null = null;
  if (process.platform === 'linux' && process.env.SOCKIT_NO_NATIVE !== '1') {
    try {
      // Resolved from build/src (the bundles keep each module's own import.meta.url).
      addon = createRequire(import.meta.url)(`../../native/build/Release/${name}.node`) as T;
    } catch {
      // the caller's fallback runs instead
    }
  }
  loaded.set(name, addon);
  return addon;
}
