// Debian's Chromium running the browser MCP client (pages/flow.html, from its own origin)
// through the broker: the page's fetches meet the broker's CORS, its redirect meets the consent
// page (Approve clicked) and the provider's login (oidc-provider's pages), and it comes back to
// pages/callback.html with a code. Prints what the page saw, and the browser console.
import { launchChromium } from "./launch.mjs";

const [pageBase, resource] = process.argv.slice(2);
const browser = await launchChromium();
const consoleLines = [];
try {
  const page = await browser.newPage();
  page.on("console", (message) => consoleLines.push(message.text()));
  await page.goto(`${pageBase}/flow.html?resource=${encodeURIComponent(resource)}`);
  await page.waitForSelector("button[value=approve]", { timeout: 30000 });
  const consent = await page.textContent("#client-name");
  await Promise.all([page.waitForNavigation(), page.click("button[value=approve]")]);
  await page.fill("input[name=login]", "alice");
  await page.fill("input[name=password]", "any");
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  if (!page.url().startsWith(pageBase)) {
    await Promise.all([page.waitForURL((url) => url.href.startsWith(pageBase)), page.click("button[type=submit]")]);
  }
  await page.waitForFunction(() => window.done === true, null, { timeout: 30000 });
  const flow = await page.evaluate(() => window.results);
  console.log(JSON.stringify({ consent, flow, console: consoleLines }));
} finally {
  await browser.close();
}
