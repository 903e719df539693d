#!/usr/bin/env node
// ort_run.mjs: runs an ONNX model with ONNX Runtime (CPU execution provider) on inputs read
// from .npy files and writes every output as <output-dir>/<name>.npy.
//
//   node bench/peer/ort_run.mjs MODEL --input NAME=FILE.npy [--input ...] --output-dir DIR
//        [--threads N] [--quiet]
//
// Output file names are the output names with every character outside [A-Za-z0-9._-]
// replaced by '_'. ONNX Runtime is a peer for benchmarks and golden outputs only; tandem does
// not depend on it. Install it with `npm ci --ignore-scripts` in bench/peer/.
//
// The module also exports its .npy reader and writer (readNpy, writeNpy, parseNpy, encodeNpy)
// for the other scripts; they handle C-order little-endian numeric dtypes and bool, format
// versions 1-3 on read and version 1 on write.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

// --- .npy ----------------------------------------------------------------------------------

// numpy descr (without byte-order char) <-> ONNX Runtime tensor type and JS typed array.
const DTYPES = [
  { descr: 'f4', ort: 'float32', array: Float32Array },
  { descr: 'f8', ort: 'float64', array: Float64Array },
  { descr: 'f2', ort: 'float16', array: Uint16Array },  // raw IEEE half bits
  { descr: 'i1', ort: 'int8', array: Int8Array },
  { descr: 'u1', ort: 'uint8', array: Uint8Array },
  { descr: 'i2', ort: 'int16', array: Int16Array },
  { descr: 'u2', ort: 'uint16', array: Uint16Array },
  { descr: 'i4', ort: 'int32', array: Int32Array },
  { descr: 'u4', ort: 'uint32', array: Uint32Array },
  { descr: 'i8', ort: 'int64', array: BigInt64Array },
  { descr: 'u8', ort: 'uint64', array: BigUint64Array },
  { descr: 'b1', ort: 'bool', array: Uint8Array },
];

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);  // "\x93NUMPY"

// Parses .npy bytes into { dtype (ORT type name), shape (number[]), data (typed array) }.
export function parseNpy(bytes, name = '<npy>') {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
  const fail = (msg) => { throw new Error(`${name}: ${msg}`); };
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) fail('not a .npy file (bad magic)');
  const major = buf[6];
  let headerLen, headerStart;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) fail('truncated header');
    headerLen = buf.readUInt32LE(8);
    headerStart = 12;
  } else {
    fail(`unsupported format version ${major}.${buf[7]}`);
  }
  const dataStart = headerStart + headerLen;
  if (dataStart > buf.length) fail('truncated header');
  const header = buf.subarray(headerStart, dataStart).toString(major === 3 ? 'utf8' : 'latin1');

  const descrMatch = header.match(/'descr'\s*:\s*'([^']*)'/);
  const fortranMatch = header.match(/'fortran_order'\s*:\s*(True|False)/);
  const shapeMatch = header.match(/'shape'\s*:\s*\(([^)]*)\)/);
  if (!descrMatch || !fortranMatch || !shapeMatch) fail(`malformed header ${JSON.stringify(header)}`);
  if (fortranMatch[1] === 'True') fail('Fortran-order arrays are not supported');
  const descr = descrMatch[1];
  const order = descr[0];
  if (order === '>') fail(`big-endian dtype '${descr}' is not supported`);
  const entry = DTYPES.find((d) => d.descr === descr.slice(1));
  if (!entry || !'<|='.includes(order)) fail(`unsupported dtype '${descr}'`);
  const shape = shapeMatch[1].split(',').map((s) => s.trim()).filter((s) => s.length > 0).map((s) => {
    if (!/^\d+$/.test(s)) fail(`bad shape entry '${s}'`);
    return Number(s);
  });

  const count = shape.reduce((a, b) => a * b, 1);
  const byteLen = count * entry.array.BYTES_PER_ELEMENT;
  if (buf.length - dataStart < byteLen) {
    fail(`data has ${buf.length - dataStart} bytes, shape (${shape.join(', ')}) needs ${byteLen}`);
  }
  // Copy into a fresh, aligned ArrayBuffer: the data offset need not suit the element size.
  const raw = new ArrayBuffer(byteLen);
  new Uint8Array(raw).set(buf.subarray(dataStart, dataStart + byteLen));
  const data = new entry.array(raw);
  if (entry.ort === 'bool') {
    for (let i = 0; i < data.length; ++i) if (data[i] > 1) fail(`bool element ${i} is ${data[i]}`);
  }
  return { dtype: entry.ort, shape, data };
}

export function readNpy(path) {
  return parseNpy(readFileSync(path), path);
}

// Encodes { dtype (ORT type name), shape, data } as .npy format version 1.0 bytes.
export function encodeNpy({ dtype, shape, data }) {
  const entry = DTYPES.find((d) => d.ort === dtype);
  if (!entry) throw new Error(`encodeNpy: unsupported dtype '${dtype}'`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.length !== count) {
    throw new Error(`encodeNpy: ${data.length} elements for shape [${shape.join(', ')}]`);
  }
  const size = entry.array.BYTES_PER_ELEMENT;
  const order = size === 1 ? '|' : '<';
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${order}${entry.descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // Pad with spaces so that magic + version + length + header + '\n' is a multiple of 64.
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  if (header.length > 0xffff) throw new Error('encodeNpy: header too long for format 1.0');
  const prefix = Buffer.alloc(10);
  MAGIC.copy(prefix, 0);
  prefix[6] = 1;
  prefix[7] = 0;
  prefix.writeUInt16LE(header.length, 8);
  // Normalize to the typed array the dtype uses (bool may arrive as a plain Uint8Array view
  // of a larger buffer, float32 data as any view).
  const typed = data instanceof entry.array ? data : entry.array.from(data);
  const body = Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength);
  return Buffer.concat([prefix, Buffer.from(header, 'latin1'), body]);
}

export function writeNpy(path, array) {
  writeFileSync(path, encodeNpy(array));
}

// File name for an output: characters outside [A-Za-z0-9._-] become '_'.
export function sanitizeName(name) {
  return name.replace(/[^A-Za-z0-9._-]/g, '_');
}

// --- command line --------------------------------------------------------------------------

const USAGE = 'usage: node ort_run.mjs MODEL --input NAME=FILE.npy [--input ...] --output-dir DIR [--threads N] [--quiet]';

function parseArgs(argv) {
  const opts = { model: null, inputs: [], outputDir: null, threads: 0, quiet: false };
  for (let i = 0; i < argv.length; ++i) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--input') {
      const spec = value();
      const eq = spec.indexOf('=');
      if (eq <= 0 || eq === spec.length - 1) throw new Error(`--input wants NAME=FILE, got '${spec}'`);
      opts.inputs.push({ name: spec.slice(0, eq), file: spec.slice(eq + 1) });
    } else if (arg === '--output-dir') {
      opts.outputDir = value();
    } else if (arg === '--threads') {
      const t = value();
      if (!/^\d+$/.test(t)) throw new Error(`--threads wants a non-negative integer, got '${t}'`);
      opts.threads = Number(t);
    } else if (arg === '--quiet') {
      opts.quiet = true;
    } else if (arg === '-h' || arg === '--help') {
      console.log(USAGE);
      process.exit(0);
    } else if (arg.startsWith('-')) {
      throw new Error(`unknown option '${arg}'`);
    } else if (opts.model === null) {
      opts.model = arg;
    } else {
      throw new Error(`unexpected argument '${arg}'`);
    }
  }
  if (opts.model === null) throw new Error('no MODEL given');
  if (opts.outputDir === null) throw new Error('--output-dir is required');
  return opts;
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`ort_run: ${e.message}\n${USAGE}`);
    process.exit(2);
  }
  const ort = await import('onnxruntime-node');

  const sessionOptions = { executionProviders: ['cpu'] };
  if (opts.threads > 0) {
    sessionOptions.intraOpNumThreads = opts.threads;
    sessionOptions.interOpNumThreads = 1;
  }
  const session = await ort.InferenceSession.create(resolve(opts.model), sessionOptions);

  const feeds = {};
  for (const { name, file } of opts.inputs) {
    if (!session.inputNames.includes(name)) {
      throw new Error(`model has no input '${name}' (inputs: ${session.inputNames.join(', ')})`);
    }
    if (name in feeds) throw new Error(`input '${name}' given twice`);
    const a = readNpy(file);
    feeds[name] = new ort.Tensor(a.dtype, a.data, a.shape);
  }
  const missing = session.inputNames.filter((n) => !(n in feeds));
  if (missing.length > 0) throw new Error(`no value for input(s): ${missing.join(', ')}`);

  const start = process.hrtime.bigint();
  const results = await session.run(feeds);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;

  mkdirSync(opts.outputDir, { recursive: true });
  const used = new Map();
  for (const name of session.outputNames) {
    const t = results[name];
    const file = sanitizeName(name) + '.npy';
    if (used.has(file)) throw new Error(`outputs '${used.get(file)}' and '${name}' both map to ${file}`);
    used.set(file, name);
    const path = join(opts.outputDir, file);
    writeNpy(path, { dtype: t.type, shape: t.dims.map(Number), data: t.data });
    if (!opts.quiet) console.log(`${name}\t${t.type}\t[${t.dims.join(', ')}]\t${path}`);
  }
  if (!opts.quiet) console.log(`ort ${ort.env.versions?.node ?? '?'} cpu: run took ${ms.toFixed(1)} ms`);
  await session.release?.();
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((e) => {
    console.error(`ort_run: ${e.message ?? e}`);
    process.exit(1);
  });
}
