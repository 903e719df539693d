#!/usr/bin/env node
// make_goldens.mjs: regenerates the golden inputs and ONNX Runtime outputs for the three
// PP-OCR models under models/ (see tests/golden/README.md).
//
//   (cd bench/peer && npm ci --ignore-scripts)   # once
//   node tests/golden/make_goldens.mjs
//
// For each model it fills the input `x` with uniform floats in [0, 1) from a seeded
// mulberry32 generator (seeds below), writes tests/golden/<dir>/input_x.npy, then runs
// bench/peer/ort_run.mjs (CPU EP, one thread) with --output-dir tests/golden/<dir>, which
// writes <output-name>.npy. Everything is deterministic: rerunning gives the same inputs, and
// the same outputs up to ONNX Runtime's own run-to-run stability.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { writeNpy } from '../../bench/peer/ort_run.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const ORT_RUN = join(ROOT, 'bench/peer/ort_run.mjs');

export const CASES = [
  { dir: 'det', model: 'ch_PP-OCRv4_det_infer.onnx', input: 'x', shape: [1, 3, 160, 160], seed: 0x7a4d0001 },
  { dir: 'rec', model: 'ch_PP-OCRv4_rec_infer.onnx', input: 'x', shape: [1, 3, 48, 320], seed: 0x7a4d0002 },
  { dir: 'cls', model: 'ch_ppocr_mobile_v2.0_cls_infer.onnx', input: 'x', shape: [1, 3, 48, 192], seed: 0x7a4d0003 },
  // Uniform noise barely excites the detector (its outputs stay near 0), so this case feeds a
  // normalized synthetic page: rows of dark word-like bars on white, plus a little noise.
  { dir: 'det_text', model: 'ch_PP-OCRv4_det_infer.onnx', input: 'x', shape: [1, 3, 160, 160], seed: 0x7a4d0004,
    pattern: 'text' },
];

// A white page with dark horizontal "words", normalized with the ImageNet mean and std the
// PaddleOCR detector was trained with.
export function textPageTensor(shape, seed) {
  const next = mulberry32(seed);
  const [n, c, h, w] = shape;
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  const data = new Float32Array(n * c * h * w);
  for (let y = 0; y < h; ++y) {
    for (let x = 0; x < w; ++x) {
      const inLine = y % 20 >= 6 && y % 20 < 13 && x >= 8 && x < w - 8;
      const inWord = (x + 7 * Math.floor(y / 20)) % 26 < 19;
      const ink = inLine && inWord ? 0.08 : 0.95;
      for (let ch = 0; ch < c; ++ch) {
        const v = ink + (next() - 0.5) * 0.04;
        data[(ch * h + y) * w + x] = Math.fround((v - mean[ch]) / std[ch]);
      }
    }
  }
  return { dtype: 'float32', shape, data };
}

// mulberry32: a 32-bit state generator (Tommy Ettinger's constants). Each call returns a
// float in [0, 1) built from the top 24 bits of the output, so every value is an exact
// float32 and the .npy holds exactly what the generator produced.
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    t = (t ^ (t >>> 14)) >>> 0;
    return (t >>> 8) / 16777216;
  };
}

export function uniformTensor(shape, seed) {
  const next = mulberry32(seed);
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; ++i) data[i] = next();
  return { dtype: 'float32', shape, data };
}

function sha256(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function main() {
  if (!existsSync(join(ROOT, 'bench/peer/node_modules/onnxruntime-node'))) {
    console.error('make_goldens: ONNX Runtime is not installed; run (cd bench/peer && npm ci --ignore-scripts)');
    process.exit(1);
  }
  for (const c of CASES) {
    const model = join(ROOT, 'models', c.model);
    if (!existsSync(model)) {
      console.error(`make_goldens: ${relative(ROOT, model)} is missing; run scripts/setup to fetch the models`);
      process.exit(1);
    }
    const out = join(HERE, c.dir);
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out, { recursive: true });
    const inputFile = join(out, `input_${c.input}.npy`);
    writeNpy(inputFile, c.pattern === 'text' ? textPageTensor(c.shape, c.seed) : uniformTensor(c.shape, c.seed));
    console.log(`== ${c.dir}: ${c.model} (sha256 ${sha256(model)})`);
    console.log(`   ${c.input} float32 [${c.shape.join(', ')}] seed 0x${c.seed.toString(16)}`);
    execFileSync(process.execPath, [ORT_RUN, model, '--input', `${c.input}=${inputFile}`, '--output-dir', out,
      '--threads', '1'], { stdio: 'inherit' });
    console.log(`   files: ${readdirSync(out).sort().join(' ')}`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
