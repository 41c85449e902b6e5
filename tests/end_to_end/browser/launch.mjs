// Debian's Chromium, headless, never a downloaded browser: the one launch every script here uses.
// `hosts` are names the browser resolves to 127.0.0.1 (an origin that is not loopback by name).
import { chromium } from "playwright-core";

export function launchChromium(hosts = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...hosts.map((host) => `--host-resolver-rules=MAP ${host} 127.0.0.1`),
    ],
  });
}
