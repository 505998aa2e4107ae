// tls.js - the live console of a TLS array in a real headless Chromium,
// over the DevTools protocol (puppeteer-core), against a running `kbsim
// serve --tls offload --pass-through --extended-protection require`
// (tests/test_console.c starts it).
//
//   node tls.js CONSOLE_URL KBSIM LISTENER_URL CA_FILE USER
//
// Prints one line per step; exits 0 when every step held, 1 with the
// failed step's line otherwise. Steps:
//   1. the console loads with its token;
//   2. a `kbsim client` session over HTTPS (verified against CA_FILE)
//      appears, its diagram saying what each hop is: HTTPS to the
//      listener, HTTP on to Exchange;
//   3. the Exchange line says Extended Protection refused the login, and
//      why: the channel binding the client computed (32 hex digits) and
//      that Exchange's connection had no TLS to match it.
"use strict";

const { execFile } = require("child_process");
const puppeteer = require("puppeteer-core");

const [consoleUrl, kbsim, listenerUrl, caFile, user] = process.argv.slice(2);
const STEP_MS = 20000; // a step that takes longer has failed, not slowed

function fail(msg) {
  console.log("FAIL " + msg);
  process.exit(1);
}

function ok(msg) {
  console.log("ok " + msg);
}

// One `kbsim client` session over HTTPS; resolves its exit code (1: the
// login refused, as Extended Protection behind offloading wants).
function client() {
  return new Promise((resolve) => {
    execFile(kbsim, ["client", "--url", listenerUrl, "--ca-file", caFile,
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
    if (code !== 1)
      fail("kbsim client exited " + code + ", not 1 (the login refused)");
    await until(page, "the session's diagram names its hops", () => {
      const hop = (n) => {
        const t = document.querySelector(
          `.session svg text.hopkind[data-hop="${n}"]`);
        return t ? t.textContent : "";
      };
      return hop(1) === "HTTPS" && hop(2) === "HTTP";
    });
    ok("the diagram says HTTPS to the listener, HTTP on to Exchange");

    await until(page, "the Exchange line says why the login was refused",
                () => {
      const epa = document.querySelector("#exchange .epa");
      return epa && new RegExp(
        "^ \u00b7 Extended Protection refused 1 login: Extended " +
        "Protection \\(require\\): the client's channel binding " +
        "[0-9a-f]{32} names the certificate it saw, but this connection " +
        "reached Exchange over plain HTTP").test(epa.textContent);
    });
    ok("Extended Protection's refusal with the client's binding");
  } finally {
    await browser.close();
  }
}

main().catch((e) => fail(e.message));
