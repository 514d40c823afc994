/**
 * The codec micro-benchmark: `encodeFrame` + `FrameDecoder` in this process, no sockets.
 * Target of issue 2: encode + decode of a 64 KiB frame at >= 2 GB/s.
 *
 * Two views of the 64 KiB case, because the decoder's cost depends on how bytes arrive:
 * - as encoded (`[prefix+header, body]` pushed as is): the body is handed out as a view, no copy;
 * - as a socket delivers them: the encoded stream cut into 64 KiB reads, so most bodies span two
 *   reads and are copied once into an exactly sized buffer (the decoder's only copy).
 */
import { performance } from 'node:perf_hooks';
import { FrameDecoder } from '../src/protocol/decoder.js';
import { encodeFrame, encodeFrameToBuffer } from '../src/protocol/frame.js';
import type { BenchContext, BenchSuite } from './report.js';

const DURATION_MS = Math.min(1500, Number(process.env.SOCKIT_BENCH_SECONDS ?? 3) * 500);
const WARMUP_MS = 300;
const LARGE = 64 * 1024;
const SMALL = 64;
const READ_SIZE = 64 * 1024;
const GB_PER_SECOND_TARGET = 2;

/** Calls `step` in batches until `DURATION_MS` passes (after a warm-up); returns calls per second. */
function callsPerSecond(step: () => void, batch: number): number {
  const run = (ms: number): number => {
    const start = performance.now();
    let calls = 0;
    let now = start;
    while (now - start < ms) {
      for (let i = 0; i < batch; i++) step();
      calls += batch;
      now = performance.now();
    }
    return calls / ((now - start) / 1000);
  };
  run(WARMUP_MS);
  return run(DURATION_MS);
}

/** An encoded stream of `count` frames cut into socket-sized reads (views, made once). */
function socketReads(type: string, body: Buffer, count: number): Buffer[] {
  const frames: Buffer[] = [];
  for (let id = 1; id <= count; id++) frames.push(encodeFrameToBuffer({ type, id }, body));
  const stream = Buffer.concat(frames);
  const reads: Buffer[] = [];
  for (let at = 0; at < stream.length; at += READ_SIZE) reads.push(stream.subarray(at, at + READ_SIZE));
  return reads;
}

function expectBody(body: Buffer | undefined, size: number): void {
  if (body?.length !== size)
    throw new Error(`decoder returned a body of ${body?.length} bytes, expected ${size}`);
}

/** Frames per second: encode one frame, push what `encodeFrame` returned, take the frame. */
function oneAtATime(type: string, body: Buffer, batch: number): number {
  const decoder = new FrameDecoder();
  let id = 0;
  return callsPerSecond(() => {
    for (const part of encodeFrame({ type, id: ++id }, body)) decoder.push(part);
    expectBody(decoder.next()?.body, body.length);
  }, batch);
}

/**
 * Frames per second as a socket delivers them: encode `count` frames, then decode `count`
 * frames from the same stream pre-cut into 64 KiB reads.
 */
function fromSocketReads(type: string, body: Buffer, count: number): number {
  const reads = socketReads(type, body, count);
  const decoder = new FrameDecoder();
  let id = 0;
  const rate = callsPerSecond(() => {
    for (let i = 0; i < count; i++) encodeFrame({ type, id: ++id }, body);
    let frames = 0;
    for (const read of reads) {
      decoder.push(read);
      for (let frame = decoder.next(); frame; frame = decoder.next()) {
        expectBody(frame.body, body.length);
        frames++;
      }
    }
    if (frames !== count) throw new Error(`decoded ${frames} frames, expected ${count}`);
  }, 4);
  return rate * count;
}

/** A 64 KiB-frame rate as GB/s, with its ratio against the target. */
function recordLargeFrames(
  context: BenchContext,
  figures: { rate: number; case: string; ratioCase: string },
): void {
  const gbps = (figures.rate * LARGE) / 1e9;
  context.record({
    case: figures.case,
    subject: 'sockit',
    value: gbps,
    unit: 'GB/s',
    extra: { 'frames/s': Math.round(figures.rate) },
  });
  context.ratio({
    case: figures.ratioCase,
    label: 'encode + decode GB/s',
    value: gbps,
    target: GB_PER_SECOND_TARGET,
  });
}

export const codecSuite: BenchSuite = {
  name: 'codec',
  async run(context) {
    const large = Buffer.alloc(LARGE, 0x61);
    const small = Buffer.alloc(SMALL, 0x61);

    // 64 KiB, pushed as encoded: encode, push both parts, take the frame.
    recordLargeFrames(context, {
      rate: oneAtATime('data', large, 64),
      case: 'codec 64 KiB frame, encode + decode (body passed as a view)',
      ratioCase: 'codec 64 KiB frame, view',
    });
    // 64 KiB, as a socket delivers it: encode 16 frames, decode 16 frames from 64 KiB reads.
    recordLargeFrames(context, {
      rate: fromSocketReads('data', large, 16),
      case: 'codec 64 KiB frame, encode + decode (from 64 KiB socket reads, bodies copied once)',
      ratioCase: 'codec 64 KiB frame, socket reads',
    });

    // 64 B, one at a time: encode (header and body in one buffer), push, take.
    {
      const rate = oneAtATime('echo', small, 256);
      context.record({
        case: 'codec 64 B frame, encode + decode one at a time',
        subject: 'sockit',
        value: rate,
        unit: 'frames/s',
        extra: { 'MB/s': Math.round((rate * SMALL) / 1e6) },
      });
    }

    // 64 B, pipelined: many small frames per 64 KiB read, as under load.
    {
      const rate = fromSocketReads('echo', small, 512);
      context.record({
        case: 'codec 64 B frames, encode + decode from 64 KiB socket reads',
        subject: 'sockit',
        value: rate,
        unit: 'frames/s',
        extra: { 'MB/s': Math.round((rate * SMALL) / 1e6) },
      });
    }
  },
};
