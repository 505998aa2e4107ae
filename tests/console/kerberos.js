// kerberos.js - the live console of a Kerberos user's session in a real
// headless Chromium, over the DevTools protocol (puppeteer-core), against
// a running `kbsim serve --krb5-keytab FILE` (tests/test_kerberos.c starts
// it, with a realm of its own).
//
//   node kerberos.js CONSOLE_URL KBSIM LISTENER_URL CCACHE USER
//
// Prints one line per step; exits 0 when every step held, 1 with the
// failed step's line otherwise. Steps:
//   1. the console loads with its token;
//   2. a `kbsim client --krb5-ccache` session appears, its legs drawn as a
//      Kerberos ticket: "Negotiate (Kerberos)" on the request, ISA's
//      decision the one-leg acceptance, nothing body-less.
"use strict";

const { execFile } = require("child_process");
const puppeteer = require("puppeteer-core");

const [consoleUrl, kbsim, listenerUrl, ccache, user] = process.argv.slice(2);
const STEP_MS = 20000; // a step that takes longer has failed, not slowed

function fail(msg) {
  console.log("FAIL " + msg);
  process.exit(1);
}

function ok(msg) {
  console.log("ok " + msg);
}

// One `kbsim client` session with the user's Kerberos ticket; resolves
// its exit code.
function client() {
  return new Promise((resolve) => {
    execFile(kbsim, ["client", "--url", listenerUrl, "--krb5-ccache", ccache,
                     "--user", user, "--posts", "1"],
             (err) => resolve(err ? err.code : 0));
  });
}

// Waits for fn (run in the page) to return true.
async function until(page, what, fn, ...args) {
  try {
    await page.waitForFunction(fn, { timeout: STEP_MS, polling: "mutation" },
                               ...args);
  } catch (e) {
    fail(what + ": " + e.message.split("\n")[0]);
  }
}

async function main() {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-dev-shm-usage", "--proxy-server=direct://",
           "--proxy-bypass-list=*"],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1024, height: 768 });
    await page.goto(consoleUrl);
    await until(page, "the console connects",
                () => document.getElementById("state").textContent !==
                      "connecting");
    ok("the console loads");

    const code = await client();
    if (code !== 0)
      fail("kbsim client exited " + code + ", not 0");
    await until(page, "the session's legs say Kerberos", () => {
      const texts = Array.from(document.querySelectorAll(".session svg text"))
        .map((t) => t.textContent);
      const label = new RegExp("^POST /EWS/Exchange\\.asmx \u00b7 Negotiate " +
                               "\\(Kerberos\\) \u00b7 [1-9][0-9]* B$");
      return texts.some((t) => label.test(t)) &&
        texts.some((t) => t === "ISA: Kerberos ticket: one leg, forwarded " +
                                "with its body");
    });
    ok("the legs: Negotiate (Kerberos), accepted in one leg");
    const bodiless = await page.evaluate(() =>
      Array.from(document.querySelectorAll(".session svg text"))
        .some((t) => /body-less/.test(t.textContent)));
    if (bodiless)
      fail("a Kerberos session drew a body-less POST");
    ok("nothing body-less");
  } finally {
    await browser.close();
  }
}

main().catch((e) => fail(e.message));
