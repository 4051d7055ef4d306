// The pool map page (`lb-ip-guard pools --format html`) in headless Chromium, offline: the
// Kubeflow example's page cell by cell, hover and keyboard focus, the search box, escaping of
// hostile manifest strings, and a /16 pool's render time. Screenshots go to a temp folder that
// the test prints.

import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { Page } from "playwright-core";
import {
  claim,
  cli,
  configMap,
  KUBEFLOW,
  namespace,
  reservation,
  yaml,
} from "../cli/check/helpers.ts";
import {
  type Browser,
  cell,
  describeBrowser,
  launchBrowser,
  open,
  stateCounts,
} from "./browser.ts";

/** Writes the page of `pools ARGS --format html` into `dir` and returns its path. */
async function poolMapPage(dir: string, name: string, args: readonly string[]): Promise<string> {
  const file = join(dir, `${name}.html`);
  const run = await cli(["pools", ...args, "--format", "html", "--output", file]);
  assert.ok(run.code === 0 || run.code === 1, `exit ${run.code}: ${run.stderr}`);
  return file;
}

await describeBrowser("the pool map in headless Chromium", () => {
  let browser: Browser;
  let page: Page;
  let dir: string;
  const errors: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "lb-ip-guard-pool-map-"));
    process.stderr.write(`pool map pages and screenshots: ${dir}\n`);
    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.on("pageerror", (error) => errors.push(error.message));
    page.on("dialog", (dialog) => {
      errors.push(`dialog: ${dialog.message()}`);
      void dialog.dismiss();
    });
    // The page must need nothing but itself.
    await browser.context.route(/^(?!file:)/, (route) => {
      errors.push(`request: ${route.request().url()}`);
      return route.abort();
    });
  });
  after(async () => {
    await browser?.close();
    assert.deepEqual(errors, []);
  });

  it("the Kubeflow example: one cell per address, coloured by state, and a legend", async () => {
    const file = await poolMapPage(dir, "kubeflow", [KUBEFLOW, "--metallb-version", "v0.11.0"]);
    await open(page, file);
    assert.deepEqual(await stateCounts(page), { c: 1, f: 7, h: 3 });
    assert.equal(await page.locator(".block").count(), 1);
    assert.equal(await page.locator(".cells i").count(), 256, "a whole /24 block, aligned on .0");
    // 192.168.35.100 is the 101st cell of its block: rows line up on the last octet.
    assert.equal(await cell(page, "192.168.35.100").getAttribute("class"), "h");
    assert.equal(await cell(page, "192.168.35.101").getAttribute("class"), "c");
    assert.equal(await cell(page, "192.168.35.99").getAttribute("class"), "o");
    const legend = (await page.locator("#legend").textContent()) ?? "";
    assert.match(legend, /free \(7\)/);
    assert.match(legend, /conflicting \(1\)/);
    assert.match(
      (await page.locator(".problems").textContent()) ?? "",
      /team-a\/minio-copy requests 192\.168\.35\.101/,
    );
    await page.screenshot({ path: join(dir, "kubeflow.png"), fullPage: true });
  });

  it("a cell names its holders on hover, and on keyboard focus with one tab stop per grid", async () => {
    await cell(page, "192.168.35.101").hover();
    const title = await cell(page, "192.168.35.101").getAttribute("title");
    assert.equal(
      title,
      "192.168.35.101: conflicting by kubeflow/minio-service (request, TCP/9000); team-a/minio-copy (request, TCP/9000)",
    );
    assert.equal(await page.locator(".info").textContent(), title);
    assert.equal(await page.locator('.cells i[tabindex="0"]').count(), 1);
    await page.locator("#search").focus();
    await page.keyboard.press("Tab");
    const focused = () =>
      page.evaluate<string | null>('document.activeElement?.getAttribute("aria-label")');
    assert.match(
      (await focused()) ?? "",
      /^192\.168\.35\.100: held by istio-system\/istio-ingressgateway/,
    );
    await page.keyboard.press("ArrowRight");
    assert.match((await focused()) ?? "", /^192\.168\.35\.101: conflicting/);
    await page.keyboard.press("End");
    assert.equal(await focused(), "192.168.35.110: free");
    await page.keyboard.press("ArrowDown");
    assert.equal(await focused(), "192.168.35.110: free", "focus stays within the pool");
    assert.equal(await page.locator('.cells i[tabindex="0"]').count(), 1, "still one tab stop");
  });

  it("the search box finds a Service by name, and an address", async () => {
    await page.locator("#search").fill("minio-copy");
    await page.locator("#search").press("Enter");
    assert.equal(
      await page.locator("#search-status").textContent(),
      "1 address held or kept for a name matching “minio-copy”",
    );
    assert.equal(
      await cell(page, "192.168.35.101").evaluate((node) => node.classList.contains("hit")),
      true,
    );
    assert.equal(await page.locator("tr.hit").count(), 1);
    await page.locator("#search").fill("192.168.35.107");
    await page.locator("#search").press("Enter");
    assert.equal(await page.locator("#search-status").textContent(), "192.168.35.107: free");
    assert.equal(await page.locator(".hit").count(), 1);
    assert.equal(
      await page.evaluate<string | null>('document.activeElement?.getAttribute("aria-label")'),
      "192.168.35.107: free",
    );
    await page.locator("#search").fill("nobody");
    await page.locator("#search").press("Enter");
    assert.equal(await page.locator(".hit").count(), 0);
  });

  it("retained and reserved cells: their own colours, in the legend, named on hover and on focus", async () => {
    const until = Date.parse("2099-01-02T03:04:05Z");
    const input = join(dir, "lifecycle.yaml");
    await writeFile(
      input,
      yaml(
        configMap("- name: lan\n  protocol: layer2\n  addresses:\n  - 10.0.0.0/29"),
        namespace("team-a", "3"),
        `apiVersion: v1
kind: Service
metadata:
  name: intruder
  namespace: team-b
spec:
  type: LoadBalancer
  loadBalancerIP: 10.0.0.4
  ports:
  - port: 80`,
        claim("10.0.0.2", "team-a/web", { since: Date.parse("2026-01-01T00:00:00Z"), until }),
        reservation("team-a/db", ["10.0.0.3"], "db"),
        reservation("team-a/any", ["10.0.0.4"]),
      ),
    );
    await open(page, await poolMapPage(dir, "lifecycle", [input]));
    assert.deepEqual(await stateCounts(page), { f: 5, h: 1, r: 1, v: 1 });
    assert.equal(await cell(page, "10.0.0.2").getAttribute("class"), "r");
    assert.equal(await cell(page, "10.0.0.3").getAttribute("class"), "v");
    // Reserved but held by another: held, and a problem.
    assert.equal(await cell(page, "10.0.0.4").getAttribute("class"), "h");
    const legend = page.locator("#legend");
    assert.match((await legend.textContent()) ?? "", /retained \(1\).*reserved \(1\)/);
    const swatch = async (state: string) =>
      legend
        .locator(`[data-state="${state}"] .swatch`)
        .evaluate((node) => node.ownerDocument.defaultView?.getComputedStyle(node).backgroundColor);
    const colours = await Promise.all(["f", "h", "s", "e", "c", "r", "v"].map(swatch));
    assert.equal(new Set(colours).size, colours.length, `a colour per state: ${colours.join(" ")}`);
    assert.equal(
      await cell(page, "10.0.0.2").evaluate(
        (node) => node.ownerDocument.defaultView?.getComputedStyle(node).backgroundColor,
      ),
      await swatch("r"),
      "a retained cell has the legend's colour",
    );

    await cell(page, "10.0.0.2").hover();
    assert.equal(
      await page.locator(".info").textContent(),
      "10.0.0.2: retained for team-a/web until 2099-01-02T03:04:05Z (since 2026-01-01T00:00:00Z)",
    );
    assert.equal(
      await cell(page, "10.0.0.2").getAttribute("title"),
      await page.locator(".info").textContent(),
    );
    await cell(page, "10.0.0.3").hover();
    assert.equal(
      await page.locator(".info").textContent(),
      "10.0.0.3: reserved by AddressReservation team-a/db for team-a/db",
    );
    await cell(page, "10.0.0.4").hover();
    assert.equal(
      await page.locator(".info").textContent(),
      "10.0.0.4: held by team-b/intruder (request, TCP/80); reserved by AddressReservation team-a/any for namespace team-a",
    );
    // Keyboard: from the reserved cell, left to the retained one.
    await cell(page, "10.0.0.3").click();
    await page.keyboard.press("ArrowLeft");
    assert.match(
      (await page.evaluate<string | null>('document.activeElement?.getAttribute("aria-label")')) ??
        "",
      /^10\.0\.0\.2: retained for team-a\/web until /,
    );
    // Listed under the grid, and found by the search by whom they are kept for.
    const keptRows = page.locator('section[data-pool="lan"] tr[data-address]');
    assert.deepEqual(await keptRows.evaluateAll((rows) => rows.map((row) => row.textContent)), [
      "10.0.0.4 heldteam-b/intruder (request, TCP/80)",
      "10.0.0.2 retainedretained for team-a/web until 2099-01-02T03:04:05Z (since 2026-01-01T00:00:00Z)",
      "10.0.0.3 reservedreserved by AddressReservation team-a/db for team-a/db",
    ]);
    await page.locator("#search").fill("team-a/web");
    await page.locator("#search").press("Enter");
    assert.equal(
      await page.locator("#search-status").textContent(),
      "1 address held or kept for a name matching “team-a/web”",
    );
    assert.equal(
      await cell(page, "10.0.0.2").evaluate((node) => node.classList.contains("hit")),
      true,
    );
    assert.match(
      (await page.locator(".quotas").textContent()) ?? "",
      /team-a3210\.0\.0\.3, 10\.0\.0\.4/,
    );
    assert.match(
      (await page.locator(".problems").textContent()) ?? "",
      /10\.0\.0\.4 is reserved by AddressReservation team-a\/any for namespace team-a, but team-b\/intruder holds it/,
    );
    await page.screenshot({ path: join(dir, "lifecycle.png"), fullPage: true });
  });

  it("strings from manifests stay text: a hostile sharing key runs nothing", async () => {
    const hostile = `"><img src=x onerror=alert(1)></script><script>alert(2)</script>`;
    const input = join(dir, "hostile.yaml");
    await writeFile(
      input,
      yaml(
        configMap("- name: lan\n  protocol: layer2\n  addresses:\n  - 10.0.0.0/29"),
        `apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: a
  annotations:
    metallb.universe.tf/allow-shared-ip: '${hostile}'
spec:
  type: LoadBalancer
  loadBalancerIP: 10.0.0.3
  ports:
  - port: 80`,
      ),
    );
    await open(page, await poolMapPage(dir, "hostile", [input]));
    assert.equal(await page.locator("img").count(), 0);
    assert.match(
      (await page.locator("table").textContent()) ?? "",
      /a\/web \(request, key "><img src=x onerror=alert\(1\)>/,
    );
  });

  it("a /16 pool: 65,536 cells within a second, .0 and .255 avoided", async () => {
    const service = (name: string, address: string, port: string, key?: string) =>
      `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: wide${key === undefined ? "" : `\n  annotations:\n    metallb.universe.tf/allow-shared-ip: ${key}`}
spec:
  type: LoadBalancer
  loadBalancerIP: ${address}
  ports:
  - port: ${port.split("/")[1]}
    protocol: ${port.split("/")[0]}`;
    const services = [
      // 200 held, 20 of them asked for again (conflicting), 50 shared by two Services each.
      ...Array.from({ length: 200 }, (_, i) => service(`s${i}`, `10.20.${i}.10`, "TCP/80")),
      ...Array.from({ length: 20 }, (_, i) => service(`again${i}`, `10.20.${i}.10`, "TCP/80")),
      ...Array.from({ length: 50 }, (_, i) => [
        service(`dns${i}-tcp`, `10.20.${i}.20`, "TCP/53", `k${i}`),
        service(`dns${i}-udp`, `10.20.${i}.20`, "UDP/53", `k${i}`),
      ]).flat(),
    ];
    const input = join(dir, "wide.yaml");
    await writeFile(
      input,
      yaml(
        configMap(
          "- name: wide\n  protocol: layer2\n  avoid-buggy-ips: true\n  addresses:\n  - 10.20.0.0/16",
        ),
        ...services,
      ),
    );
    const file = await poolMapPage(dir, "wide", [input]);
    const fresh = await browser.context.newPage();
    try {
      const { loadMs, scriptMs } = await open(fresh, file);
      // The first blocks are drawn before the first paint, the rest right after it. Times are
      // the page's own, since navigation began (the driver's round trips left out).
      await fresh.waitForSelector("body[data-complete=true][data-painted-ms]");
      const [paintedMs, completeMs] = (await fresh.evaluate(
        "[document.body.dataset.paintedMs, document.body.dataset.completeMs].map(Number)",
      )) as number[];
      process.stderr.write(
        `pool map: a /16 (65,536 cells): ${scriptMs.toFixed(0)} ms of script before the first paint, painted at ${paintedMs} ms, every cell in the DOM at ${completeMs} ms (${loadMs.toFixed(0)} ms as the driver saw it)\n`,
      );
      assert.equal(await fresh.locator(".cells i").count(), 65_536);
      const counts = await stateCounts(fresh);
      assert.deepEqual(counts, { a: 512, c: 20, f: 65_536 - 512 - 250, h: 180, s: 50 });
      assert.ok(Number(paintedMs) < 1000, `the /16 page was painted at ${paintedMs} ms`);
      assert.ok(Number(completeMs) < 1000, `the /16 page had every cell at ${completeMs} ms`);
      // A cell of the last block is there to find, hover and focus.
      await fresh.locator("#search").fill("10.20.255.254");
      await fresh.locator("#search").press("Enter");
      assert.equal(await fresh.locator("#search-status").textContent(), "10.20.255.254: free");
      await fresh.screenshot({ path: join(dir, "wide.png") });
    } finally {
      await fresh.close();
    }
  });
});
