#!/usr/bin/env node
// ort_bench.mjs: the measurement of `tandem bench`, made with ONNX Runtime (CPU execution
// provider), so that bench/compare can set the two side by side.
//
//   node bench/peer/ort_bench.mjs MODEL [--shape NAME=DIMS ...] [--threads N] [--warmup N]
//        [--iters N] [--seed N] [--json FILE] [--no-progress]
//
// The session: CPU EP, intraOpNumThreads = --threads (0: the number of physical cores),
// interOpNumThreads = 1, sequential execution, graphOptimizationLevel 'all'. Inputs are seeded
// random tensors (floats uniform in [0, 1), integers in [0, 10), bools fair coin flips, one
// seed per input counting up from --seed) with the same semantics as tandem's, though not the
// same values. --warmup untimed runs, then --iters runs timed each with process.hrtime around
// `await session.run(feeds)`. Percentiles interpolate linearly between sorted samples, as
// `tandem bench` does. JSON keys are tandem's, plus baseline_rss_mb (RSS with node and ORT
// loaded but no session yet) and added_rss_mb (peak_rss_mb - baseline_rss_mb): what ORT adds.

import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';

const USAGE =
  'usage: node ort_bench.mjs MODEL [--shape NAME=DIMS ...] [--threads N] [--warmup N] [--iters N] ' +
  '[--seed N] [--json FILE] [--no-progress]';

class UsageError extends Error {}

function parseCount(option, text, min, max) {
  if (!/^\d{1,15}$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`${option} wants an integer in [${min}, ${max}], got '${text}'`);
  }
  return Number(text);
}

// "1x3x640x640" or "1,3,640,640"; "" or "scalar" for rank 0.
function parseDims(name, text) {
  if (text === '' || text === 'scalar') return [];
  const parts = text.split(/[x,]/);
  if (!parts.every((p) => /^\d+$/.test(p))) throw new UsageError(`--shape ${name}: bad dims '${text}'`);
  return parts.map(Number);
}

function parseArgs(argv) {
  const o = { model: null, shapes: new Map(), threads: 0, warmup: 3, iters: 20, seed: 0, json: null, progress: true };
  for (let i = 0; i < argv.length; ++i) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new UsageError(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--shape') {
      const spec = value();
      const eq = spec.indexOf('=');
      if (eq <= 0) throw new UsageError(`--shape expects NAME=VALUE, got '${spec}'`);
      const name = spec.slice(0, eq);
      if (o.shapes.has(name)) throw new UsageError(`--shape names '${name}' twice`);
      o.shapes.set(name, parseDims(name, spec.slice(eq + 1)));
    } else if (arg === '--threads') {
      o.threads = parseCount(arg, value(), 0, 4096);
    } else if (arg === '--warmup') {
      o.warmup = parseCount(arg, value(), 0, 1000000);
    } else if (arg === '--iters') {
      o.iters = parseCount(arg, value(), 1, 1000000);
    } else if (arg === '--seed') {
      o.seed = parseCount(arg, value(), 0, 2 ** 32 - 1);
    } else if (arg === '--json') {
      o.json = value();
    } else if (arg === '--no-progress') {
      o.progress = false;
    } else if (arg === '-h' || arg === '--help') {
      console.log(USAGE);
      process.exit(0);
    } else if (arg.startsWith('-')) {
      throw new UsageError(`unknown option '${arg}'`);
    } else if (o.model === null) {
      o.model = arg;
    } else {
      throw new UsageError(`unexpected argument '${arg}'`);
    }
  }
  if (o.model === null) throw new UsageError('no MODEL given');
  return o;
}

// --- measurement helpers (kept in step with src/cli/bench.cpp) -------------------------------

// Physical cores this process may use: distinct (package, core) pairs in /proc/cpuinfo, capped
// by the CPUs the process may run on.
export function physicalCores() {
  const allowed = availableParallelism();
  let cores = 0;
  try {
    const pairs = new Set();
    for (const block of readFileSync('/proc/cpuinfo', 'utf8').split(/\n\s*\n/)) {
      const pkg = block.match(/^physical id\s*:\s*(\d+)/m);
      const core = block.match(/^core id\s*:\s*(\d+)/m);
      if (core) pairs.add(`${pkg ? pkg[1] : 0}:${core[1]}`);
    }
    cores = pairs.size;
  } catch {
    cores = 0;
  }
  return cores > 0 ? Math.min(cores, allowed) : allowed;
}

// A field of /proc/self/status in MiB (VmRSS: now, VmHWM: peak), or -1.
export function procStatusMb(field) {
  try {
    const m = readFileSync('/proc/self/status', 'utf8').match(new RegExp(`^${field}:\\s*(\\d+)\\s*kB`, 'm'));
    return m ? Number(m[1]) / 1024 : -1;
  } catch {
    return -1;
  }
}

// Linear interpolation between the closest ranks of `sorted` (numpy's default method).
export function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  const pos = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

// mulberry32: a small seeded generator of uint32s.
function generator(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

const ARRAYS = {
  float32: Float32Array, float64: Float64Array, int8: Int8Array, uint8: Uint8Array, int16: Int16Array,
  uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array, int64: BigInt64Array, uint64: BigUint64Array,
  bool: Uint8Array, float16: Uint16Array,
};

// The IEEE half-precision bit pattern of x (round to nearest even; x in the normal range or
// zero, as the random values below are).
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
export function halfBits(x) {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = ((bits >>> 23) & 0xff) - 127 + 15;
  if (exp <= 0) return sign;  // below half's normal range: zero (the generator stays above it or at 0)
  if (exp >= 31) return sign | 0x7c00;
  let mant = bits & 0x7fffff;
  let half = sign | (exp << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1))) half += 1;
  return half;
}

export function randomTensorData(dtype, shape, seed) {
  const Array_ = ARRAYS[dtype];
  if (!Array_) throw new Error(`cannot make random values of type ${dtype}`);
  const count = shape.reduce((a, b) => a * b, 1);
  const next = generator(seed);
  const data = new Array_(count);
  if (dtype === 'float32' || dtype === 'float64') {
    for (let i = 0; i < count; ++i) data[i] = (next() >>> 8) / 16777216;  // 24 bits: exact in [0, 1)
  } else if (dtype === 'float16') {
    for (let i = 0; i < count; ++i) data[i] = halfBits((next() >>> 8) / 16777216);
  } else if (dtype === 'bool') {
    for (let i = 0; i < count; ++i) data[i] = next() & 1;
  } else if (dtype === 'int64' || dtype === 'uint64') {
    for (let i = 0; i < count; ++i) data[i] = BigInt(next() % 10);
  } else {
    for (let i = 0; i < count; ++i) data[i] = next() % 10;
  }
  return data;
}

// Progress on stderr: a bar redrawn in place on a terminal once the run has taken 0.5 s; a line
// every 10 s in a log once the run has taken 10 s.
class Progress {
  constructor(enabled, total) {
    this.enabled = enabled;
    this.tty = Boolean(process.stderr.isTTY);
    this.total = total;
    this.start = performance.now();
    this.last = this.start;
    this.drawn = false;
  }
  update(done, phase) {
    if (!this.enabled) return;
    const now = performance.now();
    const elapsed = (now - this.start) / 1000;
    if (this.tty) {
      if (elapsed < 0.5 || (this.drawn && now - this.last < 100 && done < this.total)) return;
      const width = 30;
      const filled = Math.floor((done * width) / this.total);
      const eta = done > 0 ? (elapsed / done) * (this.total - done) : 0;
      process.stderr.write(`\r\x1b[K[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${this.total} ` +
                           `${phase}, ${elapsed.toFixed(1)} s, eta ${eta.toFixed(1)} s`);
    } else {
      if (elapsed < 10 || (this.drawn && now - this.last < 10000)) return;
      process.stderr.write(`ort_bench: ${done}/${this.total} iterations (${phase}), ${elapsed.toFixed(0)} s\n`);
    }
    this.drawn = true;
    this.last = now;
  }
  finish() {
    if (this.enabled && this.tty && this.drawn) process.stderr.write('\r\x1b[K');
    this.enabled = false;
  }
}

// --- main ------------------------------------------------------------------------------------

async function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
    if (o.json !== null) writeFileSync(o.json, '', { flag: 'a' });  // fail now, not after the run
  } catch (e) {
    console.error(`ort_bench: ${e.message}`);
    process.exit(2);
  }
  const threads = o.threads > 0 ? o.threads : physicalCores();

  const ort = await import('onnxruntime-node');
  const baselineRss = procStatusMb('VmRSS');

  const sessionOptions = {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  let t0 = performance.now();
  const session = await ort.InferenceSession.create(resolve(o.model), sessionOptions);
  const compileMs = performance.now() - t0;

  for (const name of o.shapes.keys()) {
    if (!session.inputNames.includes(name)) throw new UsageError(`--shape names unknown input '${name}'`);
  }
  const feeds = {};
  const shapes = {};
  let seed = o.seed;
  for (const meta of session.inputMetadata) {
    if (!meta.isTensor) throw new Error(`cannot make random values for non-tensor input '${meta.name}'`);
    let shape;
    if (o.shapes.has(meta.name)) {
      shape = o.shapes.get(meta.name);
      if (meta.shape.length > 0 && meta.shape.length !== shape.length) {
        throw new UsageError(`--shape ${meta.name} has rank ${shape.length}, the model declares rank ${meta.shape.length}`);
      }
    } else {
      if (!meta.shape.every((d) => typeof d === 'number' && d >= 0)) {
        throw new UsageError(`input '${meta.name}' has symbolic dims [${meta.shape.join(', ')}]; give --shape ${meta.name}=DIMS`);
      }
      shape = meta.shape;
    }
    shapes[meta.name] = shape;
    feeds[meta.name] = new ort.Tensor(meta.type, randomTensorData(meta.type, shape, seed++), shape);
  }

  const samples = [];
  const progress = new Progress(o.progress, o.warmup + o.iters);
  for (let i = 0; i < o.warmup + o.iters; ++i) {
    t0 = process.hrtime.bigint();
    await session.run(feeds);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (i >= o.warmup) samples.push(ms);
    progress.update(i + 1, i + 1 < o.warmup ? 'warm-up' : 'timed');
  }
  progress.finish();

  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  const peakRss = procStatusMb('VmHWM');
  const r = {
    runtime: 'onnxruntime-node',
    version: ort.env.versions?.node ?? ort.env.versions?.common ?? 'unknown',
    model: o.model,
    backend: 'ort-cpu',
    threads,
    shapes,
    seed: o.seed,
    warmup: o.warmup,
    iters: o.iters,
    min_ms: sorted[0],
    p50_ms: percentile(sorted, 50),
    p90_ms: percentile(sorted, 90),
    p99_ms: percentile(sorted, 99),
    max_ms: sorted[sorted.length - 1],
    mean_ms: mean,
    compile_ms: compileMs,
    peak_rss_mb: peakRss,
    baseline_rss_mb: baselineRss,
    added_rss_mb: peakRss - baselineRss,
    samples_ms: samples,
  };
  const f = (x) => x.toFixed(3);
  console.log(`model ${o.model}`);
  console.log(`inputs ${Object.entries(shapes).map(([n, s]) => `${n}=${s.join('x')}`).join(' ')}`);
  console.log(`onnxruntime-node ${r.version} cpu, threads ${threads}, warm-up ${o.warmup}, iterations ${o.iters}`);
  console.log(`session ${compileMs.toFixed(1)} ms`);
  console.log(`latency ms: min ${f(r.min_ms)}  p50 ${f(r.p50_ms)}  p90 ${f(r.p90_ms)}  p99 ${f(r.p99_ms)}  ` +
              `max ${f(r.max_ms)}  mean ${f(mean)}`);
  console.log(`peak RSS ${peakRss.toFixed(1)} MB (baseline ${baselineRss.toFixed(1)} MB, ORT adds ${r.added_rss_mb.toFixed(1)} MB)`);
  if (o.json !== null) writeFileSync(o.json, JSON.stringify(r, null, 2) + '\n');
  await session.release?.();
}

main().catch((e) => {
  console.error(`ort_bench: ${e.message ?? e}`);
  process.exit(e instanceof UsageError ? 2 : 1);
});
