// Runs Debian's Chromium headless against the broker's consent page (tests/broker/test_consent.py):
// what a user sees of a client that wrote markup in its name, whether a script ran, the answer
// to clicking Approve (no JavaScript on our page), then a page of another origin that posts the
// form itself, and one that frames the consent page. Prints one JSON object.
import { launchChromium } from "./launch.mjs";

const [base, attacker] = process.argv.slice(2);
const browser = await launchChromium(["attacker.test"]);
const dialogs = [];
try {
  const context = await browser.newContext({ javaScriptEnabled: true });
  const page = await context.newPage();
  page.on("dialog", async (dialog) => { dialogs.push(dialog.message()); await dialog.dismiss(); });
  await page.goto(`${base}/consent`);
  const shown = {
    name: await page.textContent("#client-name"),
    id: await page.textContent("#client-id"),
    scopes: await page.$$eval("#scopes li", (items) => items.map((item) => item.textContent)),
  };
  await Promise.all([page.waitForNavigation(), page.click("button[value=approve]")]);
  const approved = JSON.parse(await page.textContent("body"));

  const forged = await context.newPage();
  forged.on("dialog", async (dialog) => { dialogs.push(dialog.message()); await dialog.dismiss(); });
  await forged.goto(`${attacker}/attack`);
  await forged.waitForURL(`${base}/consent`, { timeout: 15000 });
  const crossSite = JSON.parse(await forged.textContent("body"));

  const framing = await context.newPage();
  await framing.goto(`${attacker}/frame`);
  await framing.waitForTimeout(1000);
  let framedShown = false;
  for (const frame of framing.frames()) {
    if (frame !== framing.mainFrame() && (await frame.$("#client-name").catch(() => null))) framedShown = true;
  }
  console.log(JSON.stringify({ shown, approved, crossSite, framedShown, dialogs }));
} finally {
  await browser.close();
}
