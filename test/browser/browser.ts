// Headless Chromium for the tests of the pool map page, driven by playwright-core (the driver
// only: the browser is Debian's, from scripts/chromium.ts). A suite that cannot have it is one
// skipped test with the reason outside CI, and one failing test under CI=true.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type BrowserContext, chromium as playwright } from "playwright-core";
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

/** `describe` when Chromium can be had; otherwise a skipped test (a failing one under CI=true). */
export async function describeBrowser(name: string, fn: () => void): Promise<void> {
  let skip: string | false = false;
  try {
    await chromium();
  } catch (error) {
    const message = `browser: ${(error as Error).message.split("\n")[0]}`;
    if (!(error instanceof AssetsUnavailableError) || process.env.CI === "true") {
      it(name, () => {
        const oneLine = new Error(message);
        oneLine.stack = message;
        throw oneLine;
      });
      return;
    }
    skip = message;
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
