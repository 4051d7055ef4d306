// Headless Chromium for the tests of the pool map page, driven by playwright-core (the driver
// only: the browser is Debian's, from scripts/chromium.ts). A suite that cannot have it is one
// skipped test with the reason outside CI, and one failing test under CI=true.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type BrowserContext, type Page, chromium as playwright } from "playwright-core";
import { chromium } from "../../scripts/chromium.ts";
import { AssetsUnavailableError } from "../../scripts/go-assets.ts";

/** No network, no first-run work, nothing in the background: the page must need none of it. */
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * False when Chromium is there (installing it if need be), else the one-line reason it cannot
 * be had here. Throws (one line, no stack) under CI=true or when an install failed.
 */
export async function browserSkipReason(): Promise<string | false> {
  try {
    await chromium();
    return false;
  } catch (error) {
    const message = `browser: ${(error as Error).message.split("\n")[0]}`;
    if (error instanceof AssetsUnavailableError && process.env.CI !== "true") return message;
    const oneLine = new Error(message);
    oneLine.stack = message;
    throw oneLine;
  }
}

/** `describe` when Chromium can be had; otherwise a skipped test (a failing one under CI=true). */
export async function describeBrowser(name: string, fn: () => void): Promise<void> {
  let skip: string | false;
  try {
    skip = await browserSkipReason();
  } catch (error) {
    it(name, () => {
      throw error;
    });
    return;
  }
  if (skip) it(name, { skip }, () => {});
  else describe(name, fn);
}

export interface Browser {
  readonly context: BrowserContext;
  close(): Promise<void>;
}

/** A fresh Chromium with its own user-data folder, removed on close. */
export async function launchBrowser(): Promise<Browser> {
  const userDataDir = await mkdtemp(join(tmpdir(), "lb-ip-guard-chromium-"));
  const context = await playwright.launchPersistentContext(userDataDir, {
    executablePath: await chromium(),
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 900 },
  });
  return {
    context,
    close: async () => {
      await context.close();
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}

/** Opens a page from disk; resolves once it is built and laid out, with the time that took. */
export async function open(
  page: Page,
  file: string,
): Promise<{ loadMs: number; scriptMs: number }> {
  const started = performance.now();
  await page.goto(`file://${file}`);
  await page.waitForSelector("body[data-ready=true]");
  // Two frames: the cells are laid out and painted once the second begins.
  await page.evaluate(
    "new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))",
  );
  const loadMs = performance.now() - started;
  const scriptMs = Number(await page.evaluate("document.body.dataset.renderMs"));
  return { loadMs, scriptMs };
}

/** Cell counts of each state in the grids (outside-the-pool cells left out). */
export function stateCounts(page: Page): Promise<Record<string, number>> {
  return page.evaluate(`(() => {
    const counts = {};
    for (const cell of document.querySelectorAll(".cells i:not(.o)")) {
      counts[cell.className] = (counts[cell.className] ?? 0) + 1;
    }
    return counts;
  })()`);
}

/** The cell of an IPv4 address: the (last octet)th cell of its /24 block. */
export const cell = (page: Page, address: string) => {
  const value = ipv4(address);
  return page.locator(`.cells[data-base="${value - (value % 256)}"] > i`).nth(value % 256);
};

function ipv4(text: string): number {
  return text.split(".").reduce((value, octet) => value * 256 + Number(octet), 0);
}
