// Build the dashboard into static/ (or --out DIR): index.html and content-hashed assets.
//
//   npm run build            type-check (tsc --strict), then bundle into static/
//   node build.mjs --out DIR the same bundle elsewhere (the test suite's staleness check)
//
// The output is committed, so that a fresh clone serves the dashboard without Node; the test
// suite rebuilds it and fails when the committed copy differs. Names carry a hash of their
// content (cached for a year by browsers), index.html names them (never cached), and the
// script and stylesheet carry Subresource Integrity hashes. No inline script or style: the
// page runs under a Content-Security-Policy without 'unsafe-inline'.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, 'src');
const outIndex = process.argv.indexOf('--out');
const out = outIndex >= 0 ? process.argv[outIndex + 1] : join(here, 'static');
if (!out) throw new Error('--out needs a directory');

async function bundle(entry, options = {}) {
  const result = await esbuild.build({
    entryPoints: [join(src, entry)],
    bundle: true,
    minify: true,
    write: false,
    legalComments: 'none',
    charset: 'utf8',
    logLevel: 'warning',
    ...options,
  });
  return Buffer.from(result.outputFiles[0].contents);
}

function hashed(stem, ext, bytes) {
  const digest = createHash('sha256').update(bytes).digest('hex').slice(0, 12);
  return { name: `${stem}.${digest}.${ext}`, bytes, integrity: `sha384-${createHash('sha384').update(bytes).digest('base64')}` };
}

const assets = {
  js: hashed('app', 'js', await bundle('main.ts', { format: 'esm', target: 'es2022', platform: 'browser' })),
  css: hashed('app', 'css', await bundle('style.css')),
  icon: hashed('icon', 'svg', readFileSync(join(src, 'icon.svg'))),
};

const html = readFileSync(join(src, 'index.html'), 'utf8')
  .replaceAll('{{js}}', `/assets/${assets.js.name}`)
  .replaceAll('{{jsIntegrity}}', assets.js.integrity)
  .replaceAll('{{css}}', `/assets/${assets.css.name}`)
  .replaceAll('{{cssIntegrity}}', assets.css.integrity)
  .replaceAll('{{icon}}', `/assets/${assets.icon.name}`);
if (html.includes('{{')) throw new Error('index.html has a placeholder the build does not fill');

const assetDir = join(out, 'assets');
mkdirSync(assetDir, { recursive: true });
const keep = new Set(Object.values(assets).map((a) => a.name));
for (const name of readdirSync(assetDir)) {
  if (!keep.has(name)) rmSync(join(assetDir, name));
}
for (const asset of Object.values(assets)) writeFileSync(join(assetDir, asset.name), asset.bytes);
writeFileSync(join(out, 'index.html'), html);
console.log(`dashboard built into ${out}: ${[...keep].join(', ')}`);
