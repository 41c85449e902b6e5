// Parses each Mermaid diagram of docs/ with mermaid.js itself, in Debian's headless Chromium
// (never a downloaded browser): what GitHub and the docs site render, checked as they would.
// Reads a JSON list of diagram texts on stdin; prints a JSON list: null, or the parse error.
import { readFileSync } from "node:fs";
import { launchChromium } from "./launch.mjs";

const diagrams = JSON.parse(readFileSync(0, "utf8"));
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  await page.setContent("<!doctype html><html><body></body></html>");
  await page.addScriptTag({ path: new URL("./node_modules/mermaid/dist/mermaid.min.js", import.meta.url).pathname });
  const errors = await page.evaluate(async (texts) => {
    globalThis.mermaid.initialize({ startOnLoad: false });
    const found = [];
    for (const text of texts) {
      try {
        await globalThis.mermaid.parse(text);
        found.push(null);
      } catch (error) {
        found.push(String(error?.message ?? error));
      }
    }
    return found;
  }, diagrams);
  console.log(JSON.stringify(errors));
} finally {
  await browser.close();
}
