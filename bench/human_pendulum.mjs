// A human-style run: a scripted person labels through the real page (Playwright driving
// Debian's chromium), choosing by the true return, which it reads from the run's database
// (never from the page), and pressing the keys a person would. Trains `pendulum` with its
// preset (≤ 500 labels) and judges the final policy with `prefrl eval` (20 episodes).
// Training is paced to the labeler (server.max_label_lag=0, server.undo_window_s=0, no cap on
// pending queries): labels
// arrive exactly when the label schedule asks for them, as with the oracle teacher, so the run
// must reproduce the oracle run of the same seed (the script checks its metrics against one).
// Usage: node bench/human_pendulum.mjs [SEEDS=3] [PREFRL=build/prefrl]
// (run from the repository root; playwright-core comes from tests/web/node_modules)
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const require = createRequire(resolve('tests/web/package.json'));
const { chromium } = require('playwright-core');
const seeds = Number(process.argv[2] || 3);
const binary = process.argv[3] || 'build/prefrl';
const root = process.env.ROOT || `runs/human-pendulum-${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}`;
mkdirSync(root, { recursive: true });
const TIE = 0;  // the oracle's prefs.tie_tolerance default: "equal" only for equal returns

function sql(db, query) {
  const out = execFileSync('sqlite3', ['-cmd', '.timeout 10000', '-readonly', '-json', db, query]).toString();
  return out.trim() ? JSON.parse(out) : [];
}

async function runSeed(seed) {
  const runDir = join(root, `seed${seed}`);
  const t0 = Date.now();
  const trainer = spawn(binary, ['train', '--env', 'pendulum', '--teacher', 'human', '--seed', String(seed), '--port', '0',
    '--run-dir', runDir, '--set', 'server.undo_window_s=0', '--set', 'server.max_label_lag=0', '--set', 'server.max_pending=100000',
    '--set', 'server.frame_size=128'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const exited = new Promise((res) => trainer.on('exit', (code) => res(code)));
  const url = await new Promise((res, rej) => {
    const onData = (d) => { log += d.toString(); const m = log.match(/labeling page: (http:\/\/\S+)/); if (m) res(m[1]); };
    trainer.stdout.on('data', onData); trainer.stderr.on('data', onData);
    exited.then((c) => rej(new Error(`prefrl exited ${c}:\n${log}`)));
  });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  const page = await browser.newPage();
  await page.goto(url);
  await page.fill('#labeler', 'scripted-person');
  await page.press('#labeler', 'Enter');
  const db = join(runDir, 'prefs.db');
  let labels = 0, done = false, prev = '';
  exited.then(() => { done = true; });
  while (!done) {
    let q = '';
    try {
      await page.waitForFunction((p) => { const q = document.body.dataset.queryId; return q && q !== p && !document.getElementById('btn-left').disabled; },
        prev, { timeout: 1000 });
      q = await page.evaluate(() => document.body.dataset.queryId);
    } catch (e) { continue; }  // no query yet (or training over)
    const [r] = sql(db, `SELECT a.true_return AS l, b.true_return AS r FROM queries q JOIN segments a ON a.id = q.left_id JOIN segments b ON b.id = q.right_id WHERE q.id = ${Number(q)}`);
    if (!r) throw new Error(`query ${q} is not in ${db}`);
    const key = r.l === r.r || Math.abs(r.l - r.r) <= TIE ? '=' : r.l > r.r ? 'ArrowLeft' : 'ArrowRight';
    await page.keyboard.press(key);
    ++labels; prev = q;
  }
  await browser.close();
  const code = await exited;
  const wall = (Date.now() - t0) / 1000;
  const ev = JSON.parse(execFileSync(binary, ['eval', runDir, '--episodes', '20', '--json']).toString());
  const used = sql(db, 'SELECT count(*) AS n FROM labels WHERE undone = 0')[0].n;
  // The same seed with the oracle teacher: its metrics should be the same, wall clock aside.
  const oracleDir = join(root, `oracle-seed${seed}`);
  execFileSync(binary, ['train', '--env', 'pendulum', '--seed', String(seed), '--run-dir', oracleDir], { stdio: 'ignore' });
  const strip = (f) => readFileSync(f).toString().trim().split('\n').map((l) => { const j = JSON.parse(l); delete j.wall_time;
    if (j.name.startsWith('time/') || j.name === 'charts/SPS' || j.name === 'sys/rss_mb' || j.name === 'prefs/db_bytes') j.value = 0; return JSON.stringify(j); });
  const mine = strip(join(runDir, 'metrics.jsonl')), theirs = strip(join(oracleDir, 'metrics.jsonl'));
  const differ = mine.findIndex((l, i) => l !== theirs[i]);
  const same = mine.length === theirs.length && differ < 0;
  console.log(`seed ${seed}: eval return ${ev.mean_return.toFixed(1)} ± ${ev.std_return.toFixed(1)} | labels ${used} (given through the page: ${labels}) | ${wall.toFixed(0)} s | prefrl exit ${code} | metrics ${same ? 'identical to' : 'differ from'} the oracle run's${same ? '' : ` (line ${differ + 1}: ${mine[differ]} vs ${theirs[differ]})`}`);
  return ev.mean_return;
}

const rets = [];
for (let s = 1; s <= seeds; ++s) rets.push(await runSeed(s));
const mean = rets.reduce((a, b) => a + b, 0) / rets.length;
console.log(`human-style pendulum: ${rets.map((r) => r.toFixed(1)).join(', ')}; mean ${mean.toFixed(1)}; ${rets.filter((r) => r >= -200).length}/${rets.length} seeds ≥ -200`);
