// Drives the OHIF viewer in headless Chromium (playwright-core with the machine's own
// Chromium: no browser download) against RadCase PACS, and prints what it saw as one JSON
// line.
//
// Why a separate driver: the assertions live in pytest (tests/ohif/test_ohif_viewer.py),
// which starts our server and the web server OHIF is served from. This script only acts as
// a user would (the study list, its patient filter, a click on the study, the mode button,
// the mouse wheel over the image, a link to a teaching case) and reports what happened: the
// rows shown, the time until the viewport shows a non-blank image, whether scrolling changed
// the pixels, and every failed request, HTTP error and console error on the way. It judges
// nothing itself.
//
// Input: one JSON argument, described at `main`. Output: one JSON line on stdout; the same
// report, screenshots and the console log in `input.artifacts`.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const LAUNCH_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const WINDOW = { width: 1280, height: 800 };
const POLL_MS = 50;
const IDLE_MS = 500;
const GRID = 64; // the canvas is judged as GRID x GRID cells of mean luminance
const NON_BLANK_RANGE = 32; // non-blank: brightest cell minus darkest cell, out of 255
const CHANGED_CELL = 16; // a cell changed when its mean moved by more than this
const CHANGED_SHARE = 0.05; // the image changed when this share of cells did
const ACTIVE_PANE = '[data-cy="viewport-pane"][data-is-active="true"]';

/** Everything the page does that the test judges, recorded from launch to close. */
function watch(page, localOrigins) {
  const seen = {
    consoleErrors: [],
    failedRequests: [],
    externalRequests: [],
    origins: new Set(),
    ohifTimings: {},
    log: [],
    inflight: new Set(),
    lastActivity: Date.now(),
  };
  const isNetwork = (url) => url.startsWith('http:') || url.startsWith('https:');
  const isLocal = (url) => isNetwork(url) && localOrigins.includes(new URL(url).origin);
  const settle = (request) => {
    seen.inflight.delete(request);
    seen.lastActivity = Date.now();
  };
  page.on('console', (message) => {
    const text = message.text();
    seen.log.push(`[${message.type()}] ${text}`);
    if (message.type() === 'error' || message.type() === 'assert') seen.consoleErrors.push(text);
    const timing = /^(\w+): ([\d.]+) ms$/.exec(text); // OHIF's own console.time marks
    if (message.type() === 'timeEnd' && timing) seen.ohifTimings[timing[1]] = Number(timing[2]);
  });
  page.on('pageerror', (error) => seen.consoleErrors.push(`uncaught: ${error.message}`));
  page.on('request', (request) => {
    if (!isNetwork(request.url())) return;
    seen.origins.add(new URL(request.url()).origin);
    if (!isLocal(request.url())) seen.externalRequests.push(request.url());
    seen.inflight.add(request);
    seen.lastActivity = Date.now();
  });
  page.on('response', (response) => {
    const request = response.request();
    if (response.status() >= 400 && isLocal(request.url())) {
      seen.failedRequests.push(`${request.method()} ${request.url()}: HTTP ${response.status()}`);
    }
  });
  page.on('requestfinished', settle);
  page.on('requestfailed', (request) => {
    settle(request);
    if (isLocal(request.url())) {
      seen.failedRequests.push(
        `${request.method()} ${request.url()}: ${request.failure()?.errorText}`,
      );
    }
  });
  return seen;
}

/** Waits until no request has been in flight for IDLE_MS, so that a navigation or the final
 * close never cuts a request of the viewer's short (that would be a failed request). */
async function settled(page, seen, deadline) {
  while (Date.now() < deadline) {
    if (seen.inflight.size === 0 && Date.now() - seen.lastActivity >= IDLE_MS) return true;
    await page.waitForTimeout(POLL_MS);
  }
  return false;
}

function remaining(deadline) {
  return Math.max(deadline - Date.now(), 1);
}

/** The active viewport's canvas (the image only, no overlay text) as GRID x GRID cell means.
 * Read in the page: a copy of the canvas on a 2D canvas of our own, then its pixels. */
async function canvasCells(page) {
  return page.evaluate(
    ({ selector, grid }) => {
      const canvas = document.querySelector(`${selector} canvas.cornerstone-canvas`);
      if (!canvas || !canvas.width || !canvas.height) return null;
      const copy = document.createElement('canvas');
      copy.width = canvas.width;
      copy.height = canvas.height;
      const context = copy.getContext('2d', { willReadFrequently: true });
      context.drawImage(canvas, 0, 0);
      const { data, width, height } = context.getImageData(0, 0, copy.width, copy.height);
      const sums = new Float64Array(grid * grid);
      const counts = new Uint32Array(grid * grid);
      for (let y = 0; y < height; y++) {
        const row = Math.floor((y * grid) / height) * grid;
        for (let x = 0; x < width; x++) {
          const i = (y * width + x) * 4;
          const cell = row + Math.floor((x * grid) / width);
          sums[cell] += 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
          counts[cell] += 1;
        }
      }
      return Array.from(sums, (sum, cell) => Math.round(sum / Math.max(counts[cell], 1)));
    },
    { selector: ACTIVE_PANE, grid: GRID },
  );
}

function nonBlank(cells) {
  return Array.isArray(cells) && Math.max(...cells) - Math.min(...cells) > NON_BLANK_RANGE;
}

function changedShare(before, after) {
  if (!Array.isArray(before) || !Array.isArray(after)) return 0;
  return before.filter((value, i) => Math.abs(value - after[i]) > CHANGED_CELL).length / GRID ** 2;
}

/** Polls the canvas until it shows a non-blank image: the cells and the ms since `start`. */
async function firstImage(page, start, deadline) {
  let cells = null;
  while (Date.now() < deadline) {
    cells = await canvasCells(page);
    if (nonBlank(cells)) return { ms: Date.now() - start, cells };
    await page.waitForTimeout(POLL_MS);
  }
  return { ms: null, cells };
}

/** The "I: n (n/N)" overlay of the active viewport: which slice is shown, of how many. */
async function sliceShown(page) {
  const text = await page.locator(ACTIVE_PANE).innerText().catch(() => '');
  const match = /\((\d+)\s*\/\s*(\d+)\)/.exec(text);
  return match ? { index: Number(match[1]), of: Number(match[2]) } : null;
}

function studyRow(page, study) {
  return page.locator('tbody tr').filter({ hasText: study.description });
}

async function shot(page, input, name) {
  await page.screenshot({ path: path.join(input.artifacts, `${name}.png`) });
}

/** The study list at `/`: the row of each study and which parts of the name it shows. */
async function studyList(page, input, deadline) {
  await page.goto(`${input.viewer}/`);
  const rows = [];
  for (const study of input.studies) {
    const row = studyRow(page, study);
    await row.first().waitFor({ timeout: remaining(deadline) });
    const text = await row.first().innerText();
    rows.push({
      description: study.description,
      rows: await row.count(),
      text,
      nameParts: study.nameParts.filter((part) => text.includes(part)),
    });
  }
  await shot(page, input, 'study-list');
  return rows;
}

/** Types the first study's family name, lower-cased, into the patient filter (a QIDO-RS
 * search with fuzzy matching); waits until the other studies leave the list. */
async function filterByName(page, input, deadline) {
  const [wanted, ...others] = input.studies;
  const query = wanted.nameParts[0].toLowerCase();
  const filters = page.locator('tr').filter({ has: page.getByRole('button', { name: 'Reset' }) });
  await filters.locator('input').first().fill(query);
  for (const other of others) {
    const gone = { state: 'detached', timeout: remaining(deadline) };
    await studyRow(page, other).first().waitFor(gone);
  }
  await studyRow(page, wanted).first().waitFor({ timeout: remaining(deadline) });
  await shot(page, input, 'study-list-filtered');
  const shown = await page.locator('tbody tr').allInnerTexts();
  const studyRows = shown.filter((text) => input.studies.some((s) => text.includes(s.description)));
  return { query, rows: studyRows };
}

/** Clicks the study's row, then the mode button; measures from that click to the image. */
async function openFromList(page, input, deadline) {
  await studyRow(page, input.studies[0]).first().click();
  const button = page.getByRole('button', { name: input.modeButton, exact: true });
  await button.waitFor({ timeout: remaining(deadline) });
  const start = Date.now();
  await button.click();
  const shown = await firstImage(page, start, deadline);
  await shot(page, input, 'viewer-first-image');
  return {
    url: page.url(),
    firstImageMs: shown.ms,
    nonBlank: nonBlank(shown.cells),
    cells: shown.cells,
  };
}

/** The mouse wheel over the viewport, then the canvas polled until its pixels change. */
async function scroll(page, input, before, deadline) {
  const box = await page.locator(ACTIVE_PANE).boundingBox();
  const sliceBefore = await sliceShown(page);
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  for (let step = 0; step < input.wheelSteps; step++) {
    await page.mouse.wheel(0, 120);
    await page.waitForTimeout(POLL_MS);
  }
  let cells = before;
  while (Date.now() < deadline && changedShare(before, cells) < CHANGED_SHARE) {
    await page.waitForTimeout(POLL_MS);
    cells = await canvasCells(page);
  }
  await shot(page, input, 'viewer-after-scroll');
  const share = changedShare(before, cells);
  return {
    changedShare: share,
    changed: share >= CHANGED_SHARE,
    nonBlank: nonBlank(cells),
    sliceBefore,
    sliceAfter: await sliceShown(page),
  };
}

/** Opens the teaching study by its link (OHIF's route for a named data source); notes any
 * part of the clinical patient's name the page shows (the copy is de-identified). */
async function openTeaching(page, input, deadline) {
  const start = Date.now();
  await page.goto(`${input.viewer}${input.teachingPath}`);
  const shown = await firstImage(page, start, deadline);
  await shot(page, input, 'teaching-first-image');
  const text = await page.locator('body').innerText();
  return {
    url: page.url(),
    firstImageMs: shown.ms,
    nonBlank: nonBlank(shown.cells),
    nameParts: input.studies[0].nameParts.filter((part) => text.includes(part)),
  };
}

/** A fresh, empty profile each run: no cache, no stored OHIF state, no first-run dialogs. */
async function launch(input) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'ohif-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: input.chromium,
    headless: true,
    args: LAUNCH_FLAGS,
    viewport: WINDOW,
  });
  return { context, profile };
}

async function run(input, page, seen) {
  const deadline = Date.now() + input.deadlineMs;
  const report = {};
  report.studyList = await studyList(page, input, deadline);
  report.filtered = await filterByName(page, input, deadline);
  const { cells, ...viewer } = await openFromList(page, input, deadline);
  report.viewer = viewer;
  if (viewer.nonBlank) report.scroll = await scroll(page, input, cells, deadline);
  report.settledBeforeTeaching = await settled(page, seen, deadline);
  report.teaching = await openTeaching(page, input, deadline);
  report.settledAtEnd = await settled(page, seen, deadline);
  return report;
}

/** Input: {chromium: executable, viewer: base URL OHIF is served from, localOrigins: the
 * origins of the viewer's server and ours (failures there count), studies: [{description,
 * nameParts}] (the first is filtered for and opened), modeButton: its label, wheelSteps,
 * teachingPath: the teaching study's viewer path, artifacts: folder, deadlineMs: for the
 * whole session}. */
async function main() {
  const input = JSON.parse(process.argv[2]);
  fs.mkdirSync(input.artifacts, { recursive: true });
  const { context, profile } = await launch(input);
  const page = context.pages()[0] ?? (await context.newPage());
  const seen = watch(page, input.localOrigins);
  let report = {};
  try {
    report = await run(input, page, seen);
  } catch (error) {
    report.error = String(error?.stack ?? error);
    await shot(page, input, 'failure').catch(() => {});
  } finally {
    page.removeAllListeners(); // closing aborts what is left: not the viewer's doing
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  Object.assign(report, {
    consoleErrors: seen.consoleErrors,
    failedRequests: seen.failedRequests,
    externalRequests: seen.externalRequests,
    origins: [...seen.origins].sort(),
    ohifTimings: seen.ohifTimings,
  });
  fs.writeFileSync(path.join(input.artifacts, 'console.log'), `${seen.log.join('\n')}\n`);
  fs.writeFileSync(path.join(input.artifacts, 'report.json'), JSON.stringify(report, null, 2));
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

await main();
