// Runs Debian's Chromium headless (never a downloaded browser) through pages/flow.html, which
// signs in and calls tools, then pages/refused.html from an origin the resource does not
// allow. Prints one JSON object: what each page saw, and the browser console.
import { launchChromium } from "./launch.mjs";

const [flowBase, refusedBase, resource] = process.argv.slice(2);
const browser = await launchChromium(["page.test"]);
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
