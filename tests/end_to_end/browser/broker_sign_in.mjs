// Debian's Chromium through a sign-in at the broker (tests/end_to_end/test_broker.py): the
// broker's consent page (Approve clicked: a plain form, no script), the provider's login and
// consent pages (node oidc-provider's), back through the broker to the client's redirect URI,
// whose page shows the parameters it got. Then, in the same browser (signed in at the
// provider), a second client's sign-in: the broker's consent page must show again, naming
// it; Deny is clicked. Prints one JSON object.
import { launchChromium } from "./launch.mjs";

const [first, second, redirect] = process.argv.slice(2);
const browser = await launchChromium();
const dialogs = [];
try {
  const page = await (await browser.newContext()).newPage();
  page.on("dialog", async (dialog) => { dialogs.push(dialog.message()); await dialog.dismiss(); });
  await page.goto(first);
  const consent = { name: await page.textContent("#client-name"), scopes: await page.$$eval("#scopes li", (l) => l.map((i) => i.textContent)) };
  await Promise.all([page.waitForNavigation(), page.click("button[value=approve]")]);
  await page.fill("input[name=login]", "alice");
  await page.fill("input[name=password]", "any");
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  if (!page.url().startsWith(redirect)) {  // the provider's own consent (Continue)
    await Promise.all([page.waitForURL((url) => url.href.startsWith(redirect)), page.click("button[type=submit]")]);
  }
  const signedIn = JSON.parse(await page.textContent("body"));

  await page.goto(second);
  const secondConsent = await page.$("#client-name") ? await page.textContent("#client-name") : null;
  let denied = null;
  if (secondConsent !== null) {
    await Promise.all([page.waitForURL((url) => url.href.startsWith(redirect)), page.click("button[value=deny]")]);
    denied = JSON.parse(await page.textContent("body"));
  }
  console.log(JSON.stringify({ consent, signedIn, secondConsent, secondUrl: page.url(), denied, dialogs }));
} finally {
  await browser.close();
}
