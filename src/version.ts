/** The package version, sent in `hello`/`welcome` as `sockit/<version>`. */
export const SOCKIT_VERSION = '0.1.0';
export const SOCKIT_AGENT = `sockit/${SOCKIT_VERSION}`;
