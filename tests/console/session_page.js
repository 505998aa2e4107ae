// session_page.js - what kerberos.js and tls.js share: one `kbsim client`
// session run beside a console page in headless Chromium (puppeteer-core),
// waits on DOM mutations bounded by STEP_MS, and the ok/FAIL lines every
// console driver prints.
"use strict";

const { execFile } = require("child_process");
const puppeteer = require("puppeteer-core");

const STEP_MS = 20000; // a step that takes longer has failed, not slowed

function fail(msg) {
  console.log("FAIL " + msg);
  process.exit(1);
}

function ok(msg) {
  console.log("ok " + msg);
}

// Runs `kbsim client ARGS...`; resolves its exit code.
function client(kbsim, args) {
  return new Promise((resolve) => {
    execFile(kbsim, ["client", ...args], (err) => resolve(err ? err.code : 0));
  });
}

// Waits for fn (run in the page) to return true; fails the step (what)
// when it does not within STEP_MS.
async function until(page, what, fn, ...args) {
  try {
    await page.waitForFunction(fn, { timeout: STEP_MS, polling: "mutation" },
                               ...args);
  } catch (e) {
    fail(what + ": " + e.message.split("\n")[0]);
  }
}

// Opens the console at consoleUrl at 1024x768 and waits until it is
// connected (step 1); runs steps(page), then closes the browser.
async function withConsole(consoleUrl, steps) {
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
    await steps(page);
  } finally {
    await browser.close();
  }
}

module.exports = { fail, ok, client, until, withConsole };
