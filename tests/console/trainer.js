// trainer.js - a trainer in front of a room, in a real headless Chromium
// at a projector's 1024x768, over the DevTools protocol (puppeteer-core),
// against a running `kbsim serve scenarios/half-patched-array.ini`
// (tests/test_console.c starts it). No terminal: every session is run by
// the console's Run button, inside serve.
//
//   node trainer.js CONSOLE_URL OUTDIR
//
// Writes into OUTDIR compact.png and present.png (1024x768 screenshots)
// and geometry.json: where the strip's marks and the presenter's decision
// dot are, and the colour each must have, for the C test to check the
// pixels (libpng).
//
// Prints one line per step; exits 0 when every step held, 1 with the
// failed step's line otherwise. Steps:
//   1. the console loads: the scenario picker names the running one, the
//      Run bar offers the scenario's users and members;
//   2. Run, 2 sessions through the balancer: ISA01's clean, ISA02's fails;
//      each session is labelled with its user; the strips and the scores
//      say so; a session as bob on ISA02 alone; the array's buttons stay
//      the same elements through the refreshes the sessions cause;
//   3. the fix on ISA02 by its buttons: ISA02's score starts again ("since
//      the script ran on ISA02"), and the next sessions there are clean;
//      the script undone on ISA01: its score starts again, and fails;
//   4. the compact view fits 1024x768: every control and label inside the
//      viewport, none over another, no horizontal scrolling;
//   5. the presenter: one session large, the keyboard steps through its
//      legs and sessions to ISA02's body-less POST; it fits and nothing
//      overlaps; Esc leaves;
//   6. a page of another origin cannot reset, switch or run sessions; a
//      session run as Internet Explorer is drawn with its lane and what a
//      browser shows;
//   7. Reset: every console cleared, the counters at zero, ISA02 as the
//      scenario starts it;
//   8. the scenario picker: bug in place of the array (one member), a
//      session fails there, then back;
//   9. the page never asked for anything outside the admin endpoint.
"use strict";

const fs = require("fs");
const http = require("http");
const path = require("path");
const puppeteer = require("puppeteer-core");

const [consoleUrl, outdir] = process.argv.slice(2);
const origin = new URL(consoleUrl).origin;
const STEP_MS = 20000; // a step that takes longer has failed, not slowed
const W = 1024, H = 768;

function fail(msg) {
  console.log("FAIL " + msg);
  process.exit(1);
}

function ok(msg) {
  console.log("ok " + msg);
}

// Waits for fn (run in the page) to return true.
async function until(page, what, fn, ...args) {
  try {
    await page.waitForFunction(fn, { timeout: STEP_MS, polling: "mutation" },
                               ...args);
  } catch (e) {
    const toast = await page.$eval("#toast", (t) => t.textContent)
      .catch(() => "?");
    fail(what + ": " + e.message.split("\n")[0] + " (toast: " + toast + ")");
  }
}

// The text of a member's score on the board.
function score(page, member) {
  return page.$eval(`.score[data-member="${member}"]`, (s) => s.textContent)
    .catch(() => "");
}

// Runs count sessions as user on member ("" for the next one) with the Run
// bar, as the client kind (Communicator's unless given), and waits for the
// answer in the toast; returns the toast.
async function run(page, count, user, member, kind = "communicator") {
  await page.select("#runcount", String(count));
  await page.select("#runuser", user);
  await page.select("#runmember", member);
  await page.select("#runkind", kind);
  const before = await page.$eval("#toast", (t) => t.textContent);
  await page.click("#run");
  await until(page, "Run " + count + " as " + user + " did not answer",
              (b) => {
                const t = document.getElementById("toast").textContent;
                return t !== b && !t.startsWith("Running");
              }, before);
  return page.$eval("#toast", (t) => t.textContent);
}

// In the page: the boxes of what selectors name (visible ones), and what
// is wrong with them: a box outside the viewport, two that overlap, a page
// wider than the viewport. Returns {boxes, problems}.
function layout(selectors) {
  const boxes = [];
  for (const sel of selectors)
    for (const e of document.querySelectorAll(sel)) {
      const r = e.getBoundingClientRect();
      if (!r.width || !r.height)
        continue;
      const name = sel + " '" + (e.textContent || e.getAttribute("aria-label")
                                 || "").trim().slice(0, 30) + "'";
      boxes.push({ name, l: r.left, t: r.top, r: r.right, b: r.bottom });
    }
  const problems = [];
  // A label that says less than it holds (cut off with an ellipsis).
  for (const e of document.querySelectorAll(".score, #ptitle, #pwhat, #pwhy"))
    if (e.getClientRects().length && e.scrollWidth > e.clientWidth + 1)
      problems.push("'" + e.textContent + "' is cut off");
  if (document.documentElement.scrollWidth > innerWidth)
    problems.push("the page is " + document.documentElement.scrollWidth +
                  " px wide");
  for (const b of boxes)
    if (b.l < -0.5 || b.t < -0.5 || b.r > innerWidth + 0.5 ||
        b.b > innerHeight + 0.5)
      problems.push(b.name + " is outside the viewport (" +
                    [b.l, b.t, b.r, b.b].map(Math.round).join(",") + ")");
  for (let i = 0; i < boxes.length; i++)
    for (let k = i + 1; k < boxes.length; k++) {
      const a = boxes[i], c = boxes[k];
      if (a.l < c.r - 0.5 && c.l < a.r - 0.5 && a.t < c.b - 0.5 &&
          c.t < a.b - 0.5)
        problems.push(a.name + " overlaps " + c.name);
    }
  return { boxes: boxes.length, problems };
}

async function checkLayout(page, what, selectors, min) {
  const res = await page.evaluate(layout, selectors);
  if (res.problems.length)
    fail(what + ": " + res.problems.slice(0, 4).join("; "));
  if (res.boxes < min)
    fail(what + ": only " + res.boxes + " labels found");
  return res.boxes;
}

async function main() {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-dev-shm-usage", "--proxy-server=direct://",
           "--proxy-bypass-list=*", "--font-render-hinting=none"],
  });
  const outside = [];
  const geometry = { marks: [], dot: null };
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: W, height: H });
    page.on("request", (r) => {
      if (!r.url().startsWith(origin + "/"))
        outside.push(r.url());
    });
    page.on("pageerror", (e) => fail("the page threw: " + e.message));

    // 1. The console, with its token.
    const resp = await page.goto(consoleUrl, { waitUntil: "load" });
    if (resp.status() !== 200)
      fail("the console answered " + resp.status());
    await until(page, "the console did not fill in",
                () => document.getElementById("state").textContent === "live" &&
                      document.querySelectorAll("#runuser option").length ===
                        2 &&
                      document.querySelectorAll("#runmember option").length ===
                        3);
    const pick = await page.evaluate(() => ({
      scenario: document.getElementById("scenario").value,
      scenarios: document.querySelectorAll("#scenario option").length,
      users: [...document.querySelectorAll("#runuser option")]
        .map((o) => o.value).join(","),
      reset: !document.getElementById("reset").disabled,
    }));
    if (pick.scenario !== "half-patched-array" || pick.scenarios < 10 ||
        pick.users !== "FABRIKAM\\alice,FABRIKAM\\bob" || !pick.reset)
      fail("the pickers are wrong: " + JSON.stringify(pick));
    ok("console loaded: scenario picker on half-patched-array (" +
       pick.scenarios + " scenarios), users " + pick.users);

    // 2. Sessions without a terminal. Round-robin: ISA01, then ISA02.
    // The array's buttons are marked first: every status the sessions
    // cause must leave them in place, or a trainer's click that straddles
    // a refresh is lost (mouse down on one button, up on its successor).
    await page.evaluate(() => {
      for (const b of document.querySelectorAll("#array button"))
        b.kbsimMark = true;
    });
    let t = await run(page, 2, "FABRIKAM\\alice", "");
    if (!t.startsWith("2 sessions as FABRIKAM\\alice: ISA01 \u2714, " +
                      "ISA02 \u2716 \u2014 1 error"))
      fail("two sessions through the balancer: " + t);
    await until(page, "the sessions did not appear with their user",
                () => document.querySelectorAll(
                  '.session[data-user="FABRIKAM\\\\alice"]').length === 2);
    t = await run(page, 1, "FABRIKAM\\bob", "ISA02");
    if (!t.startsWith("1 session as FABRIKAM\\bob: ISA02 \u2716"))
      fail("a session as bob on ISA02: " + t);
    await until(page, "bob's session on ISA02 did not appear",
                () => {
                  const s = document.querySelector(
                    '.session[data-user="FABRIKAM\\\\bob"]');
                  return s && s.dataset.member === "ISA02" &&
                         s.querySelector(".suser").textContent ===
                           "FABRIKAM\\bob" &&
                         s.querySelector('.userview[data-error="1"]');
                });
    await until(page, "ISA02's score did not count two errors",
                () => {
                  const s = document.querySelector(
                    '.score[data-member="ISA02"]');
                  return s && s.dataset.errors === "2";
                });
    const kept = await page.evaluate(() => {
      const bs = [...document.querySelectorAll("#array button")];
      return { all: bs.length, kept: bs.filter((b) => b.kbsimMark).length,
               requests: document.querySelector(
                 '#array tr[data-member="ISA02"] td:nth-child(5)')
                 .textContent };
    });
    if (!kept.all || kept.kept !== kept.all || kept.requests === "0")
      fail("the array's buttons were rebuilt by a status refresh: " +
           JSON.stringify(kept));
    const s1 = await score(page, "ISA01"), s2 = await score(page, "ISA02");
    if (s1 !== "since the start: 1 session, 0 errors" ||
        s2 !== "since the start: 2 sessions, 2 errors")
      fail("the scoreboard says '" + s1 + "' and '" + s2 + "'");
    ok("Run: sessions labelled with their user; scoreboard '" + s2 +
       "'; the array's " + kept.all + " buttons stayed through its refreshes");

    // 3. The fix on ISA02; its score starts again.
    await page.click('button[data-member="ISA02"][data-action="hotfix"]');
    await until(page, "Install hotfix did not take",
                () => document.getElementById("toast").textContent
                        .includes("ISA02: hotfix installed"));
    await page.click('button[data-member="ISA02"][data-action="apply-fix"]');
    await until(page, "ISA02's score did not start again",
                () => (document.querySelector('.score[data-member="ISA02"]')
                         || {}).textContent ===
                        "since the script ran on ISA02: 0 sessions, 0 errors");
    t = await run(page, 4, "FABRIKAM\\alice", "");
    if (!t.endsWith("\u2014 0 errors"))
      fail("four sessions after the fix: " + t);
    await until(page, "ISA02's score did not count the clean sessions",
                () => (document.querySelector('.score[data-member="ISA02"]')
                         || {}).textContent ===
                        "since the script ran on ISA02: 2 sessions, 0 errors");
    if (await score(page, "ISA01") !== "since the start: 3 sessions, 0 errors")
      fail("ISA01's score: " + await score(page, "ISA01"));
    // And the fix undone on ISA01: its score starts again, red.
    await page.click('button[data-member="ISA01"][data-action="revert"]');
    await until(page, "ISA01's score did not start again",
                () => (document.querySelector('.score[data-member="ISA01"]')
                         || {}).textContent ===
                        "since the script was undone on ISA01: 0 sessions, " +
                        "0 errors");
    t = await run(page, 1, "FABRIKAM\\bob", "ISA01");
    if (!t.startsWith("1 session as FABRIKAM\\bob: ISA01 \u2716"))
      fail("a session on ISA01 without the script: " + t);
    await until(page, "ISA01's score did not count the error",
                () => (document.querySelector('.score[data-member="ISA01"]')
                         || {}).textContent ===
                        "since the script was undone on ISA01: 1 session, " +
                        "1 error");
    ok("the fix on ISA02: 'since the script ran on ISA02: 2 sessions, " +
       "0 errors'; undone on ISA01: 'since the script was undone on ISA01: " +
       "1 session, 1 error'");

    // 4. The compact view fits the projector.
    await page.click("#compact");
    await until(page, "the compact view did not hide the diagrams",
                () => document.body.classList.contains("compact") &&
                      getComputedStyle(document.querySelector(".session svg"))
                        .display === "none");
    const n = await checkLayout(page, "the compact view at 1024x768", [
      "header h1", "header select", "header button", "#state", "#array th",
      "#array td:first-child", "#array button", "#exchange", "#runbar select",
      "#run", "#toast", "#board .bname", "#board .strip", "#board .score",
    ], 40);
    await checkLayout(page, "the compact sessions", [
      "#sessions .session:nth-child(-n+3) .shead span"], 12);
    for (const m of await page.$$eval(".mark", (ms) => ms.map((e) => {
      const r = e.getBoundingClientRect();
      return { x: Math.round(r.left + r.width / 2),
               y: Math.round(r.top + r.height / 2),
               error: e.dataset.error === "1",
               member: e.parentNode.dataset.member };
    })))
      geometry.marks.push(m);
    // ISA01: 1 session since the script was undone, red; ISA02: 2 since
    // the script ran, green.
    if (geometry.marks.map((m) => m.member + (m.error ? "-red" : "-green"))
          .join(",") !== "ISA01-red,ISA02-green,ISA02-green")
      fail("the strips hold " + JSON.stringify(geometry.marks));
    await page.screenshot({ path: path.join(outdir, "compact.png") });
    ok("the compact view fits 1024x768: " + n + " labels inside, none " +
       "over another; " + geometry.marks.length + " marks");

    // 5. The presenter, by the keyboard.
    await page.keyboard.press("p");
    await until(page, "the presenter did not open",
                () => document.body.classList.contains("presenting") &&
                      document.getElementById("ptitle").textContent
                        .startsWith("Session "));
    const state = () => page.evaluate(() => ({
      title: document.getElementById("ptitle").textContent,
      bad: document.getElementById("pview").className === "bad",
      leg: document.getElementById("pleg").textContent,
      what: document.getElementById("pwhat").dataset.decision,
    }));
    for (let i = 0; i < 12; i++)
      await page.keyboard.press("ArrowUp");
    let st = await state();
    if (!st.title.startsWith("Session 1 of 8"))
      fail("ArrowUp did not reach the first session: " + st.title);
    for (let i = 0; i < 8 && !(st.title.includes(" on ISA02 ") && st.bad);
         i++) {
      await page.keyboard.press("ArrowDown");
      st = await state();
    }
    if (!st.title.includes(" on ISA02 ") || !st.bad)
      fail("no failing ISA02 session to present: " + st.title);
    if (!st.leg.startsWith("Leg 1 of "))
      fail("a session does not open on its first leg: " + st.leg);
    for (let i = 0; i < 9 && st.what !== "reauth-skipped"; i++) {
      await page.keyboard.press("ArrowRight");
      st = await state();
    }
    if (st.what !== "reauth-skipped")
      fail("ArrowRight did not reach the body-less POST: " + st.leg);
    const legAt = st.leg;
    await page.keyboard.press("ArrowLeft");
    await page.keyboard.press("ArrowRight");
    if ((await state()).leg !== legAt)
      fail("ArrowLeft then ArrowRight did not come back to " + legAt);
    const p = await checkLayout(page, "the presenter at 1024x768", [
      "#ptitle", "#pview", "#pleg", "#psvg text", "#pwhat", "#pwhy",
      "#pkeys button", "#pkeys span:not(.grow)"], 14);
    const big = await page.$eval("#pwhat", (e) =>
      parseFloat(getComputedStyle(e).fontSize));
    if (big < 24)
      fail("the presenter's type is " + big + " px");
    geometry.dot = await page.$eval("#psvg circle", (c) => {
      const r = c.getBoundingClientRect();
      return { x: Math.round(r.left + r.width / 2),
               y: Math.round(r.top + r.height / 2),
               fill: c.getAttribute("fill") };
    });
    await page.screenshot({ path: path.join(outdir, "present.png") });
    await page.keyboard.press("Escape");
    if (await page.evaluate(() =>
          document.body.classList.contains("presenting")))
      fail("Esc did not leave the presenter");
    ok("the presenter: " + st.title + ", " + legAt + " (the body-less " +
       "POST), " + p + " labels inside 1024x768, none over another; Esc " +
       "leaves");

    // 6. Another origin tries the trainer's new buttons.
    const statusNow = () => page.evaluate(() =>
      fetch("/status", { credentials: "same-origin" }).then((r) => r.json()));
    const before = await statusNow();
    const attack = `<!doctype html><title>attack</title><body><script>
      const t = ${JSON.stringify(origin)};
      const jobs = [
        fetch(t + "/reset", {method: "POST", mode: "no-cors",
                             credentials: "include", body: "{}"}),
        fetch(t + "/sessions", {method: "POST", mode: "no-cors",
                                credentials: "include",
                                headers: {"Content-Type": "text/plain"},
                                body: '{"count": 20}'}),
        fetch(t + "/scenario", {method: "POST", credentials: "include",
                                headers: {"Content-Type": "application/json"},
                                body: '{"scenario": "bug"}'})
          .catch(() => null),
        new Promise(res => {
          const f = document.createElement("iframe");
          f.name = "sink"; document.body.appendChild(f);
          const form = document.createElement("form");
          form.method = "POST"; form.action = t + "/scenario";
          form.enctype = "text/plain"; form.target = "sink";
          const i = document.createElement("input");
          i.name = '{"scenario":"'; i.value = 'bug"}'; form.appendChild(i);
          document.body.appendChild(form);
          f.onload = res; form.submit();
        }),
      ];
      Promise.allSettled(jobs).then(() => { document.title = "done"; });
    </script></body>`;
    const srv = http.createServer((req, res) => {
      res.writeHead(200, { "Content-Type": "text/html" });
      res.end(attack);
    });
    await new Promise((r) => srv.listen(0, "127.0.0.1", r));
    const evil = await browser.newPage();
    await evil.goto("http://127.0.0.1:" + srv.address().port + "/");
    try {
      await evil.waitForFunction(() => document.title === "done",
                                 { timeout: STEP_MS });
    } catch (e) {
      fail("the attack page did not finish: " + e.message.split("\n")[0]);
    }
    await evil.close();
    srv.close();
    const after = await statusNow();
    if (after.generation !== before.generation ||
        after.scenario !== "half-patched-array" ||
        after.balancer.connections !== before.balancer.connections)
      fail("another origin changed the array: " + JSON.stringify(after));
    ok("a page of another origin could not reset, switch or run sessions");

    // 6b. Another client from the Run bar: Internet Explorer on ISA01,
    // whose script was undone; its session is drawn with its own lane and
    // what a browser shows.
    t = await run(page, 1, "FABRIKAM\\bob", "ISA01", "ie");
    if (!t.startsWith("1 session as FABRIKAM\\bob (Internet Explorer): " +
                      "ISA01 \u2716"))
      fail("an Internet Explorer session on ISA01: " + t);
    await until(page, "Internet Explorer's session was not drawn as its own",
                () => [...document.querySelectorAll(".session")].some((s) => {
                  const lane = s.querySelector("svg text.lanename");
                  const view = s.querySelector(".userview");
                  return lane && lane.textContent === "Internet Explorer" &&
                         view && view.textContent.includes(
                           "an HTTP 500 page in the browser");
                }));
    const communicator = await page.evaluate(() =>
      [...document.querySelectorAll(".session svg text.lanename")]
        .filter((t) => t.textContent === "Communicator").length);
    if (!communicator)
      fail("the Communicator sessions lost their lane name");
    ok("Run as Internet Explorer: its own lane, 'an HTTP 500 page in the " +
       "browser'");

    // 7. Reset, from the console.
    await page.click("#reset");
    await until(page, "Reset did not clear the console",
                () => document.body.dataset.generation === "1" &&
                      !document.querySelector(".session") &&
                      document.getElementById("toast").textContent
                        .startsWith("Reset: half-patched-array"));
    await until(page, "Reset did not bring the scenario's start back",
                () => {
                  const r = document.querySelector(
                    '#array tr[data-member="ISA02"]');
                  const s = document.querySelector(
                    '.score[data-member="ISA02"]');
                  const r1 = document.querySelector(
                    '#array tr[data-member="ISA01"]');
                  return r && r.dataset.policy === "per-connection" &&
                         r.children[1].textContent.startsWith("rtm") &&
                         !r.children[1].textContent.startsWith("rtm+") &&
                         r.children[4].textContent === "0" && r1 &&
                         r1.dataset.policy === "per-request" && s &&
                         s.textContent ===
                           "since the reset: 0 sessions, 0 errors";
                });
    const reset = await statusNow();
    if (reset.balancer.connections !== 0 || reset.exchange.requests !== 0 ||
        reset.members[1].patch !== "rtm" ||
        reset.balancer.url !== before.balancer.url)
      fail("after Reset: " + JSON.stringify(reset));
    ok("Reset: console cleared, counters at zero, ISA01 fixed and ISA02 " +
       "rtm again, the " +
       "balancer still on " + reset.balancer.url);

    // 8. Another scenario in place, a session there, and back.
    await page.select("#scenario", "bug");
    await page.click("#switch");
    await until(page, "bug did not start",
                () => document.body.dataset.generation === "2" &&
                      document.querySelectorAll("#array tr[data-member]")
                        .length === 2 &&
                      document.querySelectorAll("#board .bname").length === 1);
    t = await run(page, 1, "FABRIKAM\\alice", "");
    if (!t.startsWith("1 session as FABRIKAM\\alice: ISA01 \u2716"))
      fail("a session on bug: " + t);
    await page.select("#scenario", "half-patched-array");
    await page.click("#switch");
    await until(page, "half-patched-array did not come back",
                () => document.body.dataset.generation === "3" &&
                      document.querySelectorAll("#array tr[data-member]")
                        .length === 3 &&
                      document.getElementById("scenario").value ===
                        "half-patched-array");
    ok("the picker: bug in place (one member, its session failed), then " +
       "half-patched-array again");

    // 9. Nothing outside the endpoint.
    if (outside.length)
      fail("the console asked outside the endpoint: " + outside.join(" "));
    ok("the console made no request outside " + origin);
    fs.writeFileSync(path.join(outdir, "geometry.json"),
                     JSON.stringify(geometry));
  } finally {
    await browser.close();
  }
}

main().catch((e) => fail("driver: " + e.stack));
