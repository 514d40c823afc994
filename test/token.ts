/**
 * The token every test server and client shares. Its own module, without `node:test`, so that
 * the benchmarks can import the frame generators that use it without starting a test run.
 */
export const TEST_TOKEN = 'test-token-not-secret';
