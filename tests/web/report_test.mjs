// Browser test of the HTML reports: a tiny two-seed sweep, then its report and one seed's report
// opened in Debian's chromium (Playwright) with every network request refused. The pages must
// render (plots drawn, the seeds' table, no page errors) without requesting anything but the
// file itself.
//   node report_test.mjs PATH/TO/prefrl
//   node report_test.mjs --screenshot REPORT.html OUT.png [WIDTH]   (a full-page PNG, for docs)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const launch = () => chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] });
const fail = (msg) => { throw new Error(msg); };
const expect = (cond, msg) => { if (!cond) fail(msg); };

// Opens a file offline: any request other than the file itself is refused and recorded.
async function openOffline(browser, file, width = 1400) {
  const page = await browser.newPage({ viewport: { width, height: 900 } });
  const url = pathToFileURL(resolve(file)).href;
  const requests = [], errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.route('**/*', (route) => {
    if (route.request().url() === url) return route.continue();
    requests.push(route.request().url());
    return route.abort();
  });
  await page.goto(url);
  return { page, requests, errors };
}

if (process.argv[2] === '--screenshot') {
  const [report, out, width] = process.argv.slice(3);
  if (!report || !out) { console.error('usage: node report_test.mjs --screenshot REPORT.html OUT.png [WIDTH]'); process.exit(2); }
  const browser = await launch();
  const { page, requests } = await openOffline(browser, report, Number(width || 1400));
  await page.screenshot({ path: out, fullPage: true });
  await browser.close();
  console.log(`screenshot of ${report} => ${out} (${requests.length} network requests refused)`);
  process.exit(0);
}

const binary = process.argv[2];
if (!binary) { console.error('usage: node report_test.mjs PATH/TO/prefrl'); process.exit(2); }
const dir = mkdtempSync(join(tmpdir(), 'prefrl-report-'));
const sweep = join(dir, 'sweep');
let browser = null;
try {
  const r = spawnSync(binary, ['sweep', '--env', 'cartpole', '--seeds', '2', '--jobs', '2', '--steps', '4096', '--labels', '20',
    '--set', 'run.eval_episodes=2', '--sweep-dir', sweep], { encoding: 'utf8' });
  expect(r.status === 0, `prefrl sweep exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  expect(existsSync(join(sweep, 'report.html')), 'no sweep report');
  browser = await launch();

  const s = await openOffline(browser, join(sweep, 'report.html'));
  expect(s.requests.length === 0, `the sweep report requested ${s.requests.join(', ')}`);
  expect(s.errors.length === 0, `page errors: ${s.errors.join('; ')}`);
  const charts = await s.page.locator('svg').count();
  expect(charts >= 7, `sweep report has ${charts} charts, expected 7`);
  const paths = await s.page.locator('svg path').count();
  expect(paths > 20, `sweep report charts hold ${paths} paths`);
  const rows = await s.page.locator('h2:has-text("Seeds") + table tr').count();
  expect(rows === 3, `seeds table has ${rows} rows, expected a header and 2 seeds`);
  const heading = await s.page.locator('h1').textContent();
  expect(/Sweep sweep/.test(heading), `heading: ${heading}`);
  // The chart is really drawn: its bounding box has a size.
  const box = await s.page.locator('svg').first().boundingBox();
  expect(box && box.width > 300 && box.height > 150, `first chart box ${JSON.stringify(box)}`);

  // Follow the link to a seed's own report, still offline.
  const href = await s.page.locator('a[href$="report.html"]').first().getAttribute('href');
  expect(href === 'seed-1/report.html', `seed link ${href}`);
  const run = await openOffline(browser, join(sweep, href));
  expect(run.requests.length === 0, `the run report requested ${run.requests.join(', ')}`);
  expect(run.errors.length === 0, `page errors: ${run.errors.join('; ')}`);
  const text = await run.page.locator('body').textContent();
  for (const want of ['True return', 'Predicted return', 'Reward model accuracy', 'Policy entropy', 'Steps per second',
    'Labels', 'No health warnings', 'final true return'])
    expect(text.includes(want), `run report lacks "${want}"`);
  console.log(`ok: sweep report (${charts} charts, ${paths} paths) and seed report rendered offline, no requests`);
} finally {
  if (browser) await browser.close();
  rmSync(dir, { recursive: true, force: true });
}
