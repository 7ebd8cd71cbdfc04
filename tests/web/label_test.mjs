// Browser test of the labeling page: Playwright (playwright-core) driving Debian's chromium
// headless against a real `prefrl train --teacher human`.
//   Page A labels 20 pairs, half by keys and half by clicks, then a 21st, undone by a u pressed
//   while the next clip is still loading (queued, and said to be).
//   Page B is open at the same time and must never receive a query page A holds.
//   The run's database must then hold exactly 20 labels, with the choices page A made.
// Usage: node label_test.mjs PATH/TO/prefrl
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const binary = process.argv[2];
if (!binary) { console.error('usage: node label_test.mjs PATH/TO/prefrl'); process.exit(2); }
const dir = mkdtempSync(join(tmpdir(), 'prefrl-web-'));
const runDir = join(dir, 'run');
let trainer = null, browser = null;
const fail = (msg) => { throw new Error(msg); };
const expect = (cond, msg) => { if (!cond) fail(msg); };

async function startTrainer() {
  trainer = spawn(binary, ['train', '--env', 'pendulum', '--teacher', 'human', '--port', '0', '--labels', '30',
    '--steps', '20000', '--run-dir', runDir, '--set', 'prefs.initial_fraction=1', '--set', 'server.max_pending=100',
    '--set', 'server.undo_window_s=600', '--set', 'server.frame_size=96'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no labeling URL within 60 s:\n' + out)), 60000);
    const onData = (d) => {
      out += d.toString();
      const m = out.match(/labeling page: (http:\/\/\S+)/);
      if (m && /waiting for the first labels/.test(out)) { clearTimeout(timer); resolve(m[1]); }
    };
    trainer.stdout.on('data', onData);
    trainer.stderr.on('data', onData);
    trainer.on('exit', (code) => { clearTimeout(timer); reject(new Error(`prefrl exited (${code}):\n${out}`)); });
  });
}

const queryId = (page) => page.evaluate(() => document.body.dataset.queryId || '');
async function waitForQuery(page, notId) {
  await page.waitForFunction((prev) => {
    const q = document.body.dataset.queryId;
    const buttonsReady = !document.getElementById('btn-left').disabled;
    return q && q !== prev && buttonsReady;
  }, notId, { timeout: 20000 });
  return queryId(page);
}
const text = (page, id) => page.evaluate((i) => document.getElementById(i).textContent, id);

try {
  const url = await startTrainer();
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  const pageA = await (await browser.newContext()).newPage();
  const pageB = await (await browser.newContext()).newPage();
  const errors = [];
  for (const p of [pageA, pageB]) p.on('pageerror', (e) => errors.push(e.message));
  for (const [page, name] of [[pageB, 'bob'], [pageA, 'alice']]) {
    await page.goto(url);
    await page.fill('#labeler', name);
    await page.press('#labeler', 'Enter');
  }
  let heldByB = await waitForQuery(pageB, '');
  const chosen = new Map();   // query id => choice, as page A answered
  const choices = ['left', 'right', 'equal', 'skip'];
  const keys = { left: 'ArrowLeft', right: 'ArrowRight', equal: '=', skip: ' ' };
  let prev = '';
  for (let i = 0; i < 20; ++i) {
    const q = await waitForQuery(pageA, prev);
    expect(q !== heldByB, `page A received query ${q}, which page B holds`);
    expect(!chosen.has(q), `page A received query ${q} twice`);
    const choice = choices[i % 4];
    if (i % 2 === 0) await pageA.keyboard.press(keys[choice]);
    else await pageA.click(`button[data-choice="${choice}"]`);
    chosen.set(q, choice);
    await pageA.waitForFunction((n) => document.getElementById('your-labels').textContent === String(n), i + 1, { timeout: 20000 });
    prev = q;
    if (i === 9) {  // page B reloads: it keeps its own query, still not one of A's
      await pageB.reload();
      heldByB = await waitForQuery(pageB, '');
      expect(!chosen.has(heldByB), `page B received query ${heldByB}, which page A answered`);
    }
  }
  // One more answer, with the next query's clips held back for a second, and u pressed at
  // once: the page says the undo is queued; once the clips are in, the answer is undone and its
  // query comes back to page A.
  const last = await waitForQuery(pageA, prev);
  expect(last !== heldByB, `page A received query ${last}, which page B holds`);
  await pageA.route('**/media/segment/*.png', async (route) => {
    await new Promise((r) => setTimeout(r, 1000));
    await route.continue();
  });
  await pageA.evaluate(() => {  // every message the page shows from now on
    window.prefrlMessages = [];
    const m = document.getElementById('message');
    new MutationObserver(() => window.prefrlMessages.push(m.textContent))
      .observe(m, { childList: true, characterData: true, subtree: true });
  });
  await pageA.keyboard.press('ArrowLeft');
  chosen.set(last, 'left');
  await pageA.keyboard.press('u');
  await pageA.waitForFunction(() => document.getElementById('message').textContent.includes('Undone'), null,
    { timeout: 20000 });
  const shown = await pageA.evaluate(() => window.prefrlMessages);
  expect(shown.some((t) => t.includes('Undo queued')), 'the page did not say the undo was queued: ' + JSON.stringify(shown));
  await pageA.waitForFunction((q) => document.body.dataset.queryId === q && !document.getElementById('btn-left').disabled,
    last, { timeout: 20000 });
  await pageA.waitForFunction(() => document.getElementById('your-labels').textContent === '20', null, { timeout: 20000 });
  await pageA.unroute('**/media/segment/*.png');
  chosen.delete(last);
  expect((await text(pageA, 'message')).includes('Undone'), 'the page did not confirm the undo');
  expect(errors.length === 0, 'page errors: ' + errors.join('; '));

  // The database: exactly 20 labels by alice with the choices made, and one undone.
  const rows = JSON.parse(execFileSync('sqlite3', ['-json', join(runDir, 'prefs.db'),
    'SELECT query_id, choice, labeler, teacher, undone FROM labels ORDER BY id']).toString() || '[]');
  const live = rows.filter((r) => r.undone === 0);
  expect(live.length === 20, `expected 20 labels in the database, found ${live.length}`);
  for (const r of live) {
    expect(r.labeler === 'alice' && r.teacher === 'human', `unexpected label ${JSON.stringify(r)}`);
    expect(chosen.get(String(r.query_id)) === r.choice,
      `query ${r.query_id}: database has '${r.choice}', page A chose '${chosen.get(String(r.query_id))}'`);
  }
  expect(new Set(live.map((r) => String(r.query_id))).size === 20, 'a query was labeled twice');
  const undone = rows.filter((r) => r.undone === 1);
  expect(undone.length === 1 && String(undone[0].query_id) === last, 'the undone label is not the last one');
  console.log(`ok: 20 labels (10 by keys, 10 by clicks) match the database, a 21st was undone by a u queued while ` +
    `the next clip loaded; page B held query ${heldByB} throughout`);
} catch (e) {
  console.error('FAILED:', e.message);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close();
  if (trainer && trainer.exitCode === null) { trainer.removeAllListeners('exit'); trainer.kill('SIGKILL'); }
  rmSync(dir, { recursive: true, force: true });
}
