// Runs Debian's Chromium headless (never a downloaded browser) through pages/flow.html, which
// signs in and calls tools, then pages/refused.html from an origin the resource does not
// allow. Prints one JSON object: what each page saw, and the browser console.
import { chromium } from "playwright-core";

const [flowBase, refusedBase, resource] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    // A non-loopback name for the refused page's origin, resolved to 127.0.0.1 by the browser.
    "--host-resolver-rules=MAP page.test 127.0.0.1",
  ],
});
const consoleLines = [];
async function run(url) {
  const page = await browser.newPage();
  page.on("console", (message) => consoleLines.push(message.text()));
  await page.goto(url);
  await page.waitForFunction(() => window.done === true, null, { timeout: 30000 });
  const results = await page.evaluate(() => window.results);
  await page.close();
  return results;
}
try {
  const query = `?resource=${encodeURIComponent(resource)}`;
  const flow = await run(`${flowBase}/flow.html${query}`);
  const refused = await run(`${refusedBase}/refused.html${query}`);
  console.log(JSON.stringify({ flow, refused, console: consoleLines }));
} finally {
  await browser.close();
}
