// drive.js - the trainer's flow in a real headless Chromium, over the
// DevTools protocol (puppeteer-core), against a running `kbsim serve
// scenarios/half-patched-array.ini` (tests/test_console.c starts it).
//
//   node drive.js CONSOLE_URL BALANCER_URL KBSIM USER SCREENSHOT
//
// SCREENSHOT is written once ISA02's failing session is on the page.
//
// Prints one line per step; exits 0 when every step held, 1 with the
// failed step's line otherwise. Steps:
//   1. the console loads with its token and shows both members;
//   2. `kbsim client` sessions appear without a reload: ISA01's clean,
//      ISA02's with the body-less POST forwarded, a 500 and the
//      notification; a click on ISA02's leg shows its NTLM token decoded;
//   3. a page from another origin (same site, another port) tries to
//      revert the fix: no-cors fetch, a text/plain form, a script tag and
//      an EventSource; nothing changes and it reads nothing; a DNS-rebound
//      name for the endpoint's address gets 403;
//   4. "Install hotfix" then "Run KB script" for ISA02; the next session on
//      ISA02 succeeds;
//   5. Pause holds new legs back, Resume draws them, Clear empties;
//   6. the page never asked for anything outside the admin endpoint.
"use strict";

const { execFile } = require("child_process");
const http = require("http");
const puppeteer = require("puppeteer-core");

const [consoleUrl, balancerUrl, kbsim, user, shot] = process.argv.slice(2);
const origin = new URL(consoleUrl).origin;
const STEP_MS = 20000; // a step that takes longer has failed, not slowed

function fail(msg) {
  console.log("FAIL " + msg);
  process.exit(1);
}

function ok(msg) {
  console.log("ok " + msg);
}

// One `kbsim client` session through the balancer; resolves its exit code.
function client() {
  return new Promise((resolve) => {
    execFile(kbsim, ["client", "--url", balancerUrl, "--user", user],
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

// The number of ISA02 session rows whose user view says error (1) or not.
function sessions(member, error) {
  return `document.querySelectorAll('.session[data-member="${member}"] ` +
         `.userview[data-error="${error}"]').length`;
}

async function main() {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-dev-shm-usage", "--proxy-server=direct://",
           "--proxy-bypass-list=*",
           // A DNS-rebinding attacker's name, resolved to the endpoint.
           "--host-resolver-rules=MAP rebind.attacker.example 127.0.0.1"],
  });
  const outside = [];
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1024, height: 768 });
    page.on("request", (r) => {
      const u = r.url();
      if (!u.startsWith(origin + "/"))
        outside.push(u);
    });

    // 1. The console, with its token.
    const resp = await page.goto(consoleUrl, { waitUntil: "load" });
    if (resp.status() !== 200)
      fail("the console answered " + resp.status());
    await until(page, "the array did not appear",
                () => document.querySelectorAll("#array tr[data-member]")
                        .length === 3 &&
                      document.getElementById("state").textContent === "live");
    if (await page.evaluate(() => location.search) !== "")
      fail("the token stayed in the address bar");
    ok("console loaded: ISA01, ISA02 and every member; stream live");

    // 2. Sessions appear as they happen (round-robin: ISA01, then ISA02).
    if (await client() !== 0)
      fail("the first session (ISA01, fixed) saw the error");
    if (await client() !== 1)
      fail("the second session (ISA02, RTM) did not see the error");
    await until(page, "ISA01's clean session did not appear",
                new Function("return " + sessions("ISA01", 0) + " === 1"));
    await until(page, "ISA02's failing session did not appear",
                new Function("return " + sessions("ISA02", 1) + " === 1"));
    const bad = await page.evaluate(() => {
      const row = document.querySelector('.session[data-member="ISA02"]');
      const legs = [...row.querySelectorAll("g.leg")];
      const skipped = legs.filter((g) =>
        g.dataset.decision === "reauth-skipped" && g.dataset.status === "500");
      return { legs: legs.length, skipped: skipped.length,
               text: row.textContent };
    });
    if (bad.skipped < 1)
      fail("ISA02's row has no re-auth skipped leg answered 500: " + bad.text);
    for (const want of ["body-less POST", "500", "Outlook Integration Error",
                        "NOT challenged"])
      if (!bad.text.includes(want))
        fail("ISA02's row does not say '" + want + "': " + bad.text);
    // The README's picture: the bug on ISA02, newest on top; 1024 wide,
    // down to ISA02's last leg.
    const bottom = await page.$eval('.session[data-member="ISA02"]',
                                    (r) => r.getBoundingClientRect().bottom);
    await page.screenshot({ path: shot, captureBeyondViewport: true,
                            clip: { x: 0, y: 0, width: 1024,
                                    height: Math.ceil(bottom) + 8 } });
    ok("sessions appeared live: ISA02 shows " + bad.skipped +
       " body-less POST(s) answered 500 and the notification");
    await page.click('.session[data-member="ISA02"] ' +
                     'g.leg[data-decision="reauth-skipped"]');
    await until(page, "the leg's details did not open",
                () => document.getElementById("detail").style.display ===
                        "block");
    const detail = await page.$eval("#detailbody", (d) => d.textContent);
    for (const want of ["Authorization: NTLM ", "NEGOTIATE",
                        "Content-Length: 0", "reauth-skipped"])
      if (!detail.includes(want))
        fail("the leg's details lack '" + want + "': " + detail);
    ok("a click on the leg shows its headers and its type 1 decoded");
    await page.click("#closedetail");

    // 3. Another origin tries to undo ISA01's fix and read the status.
    const policies = () => page.$$eval("#array tr[data-policy]",
      (rows) => rows.map((r) => r.dataset.member + "=" + r.dataset.policy)
                    .join(","));
    const before = await policies();
    const target = origin;
    const attack = `<!doctype html><title>attack</title><body><script>
      const t = ${JSON.stringify(target)};
      const seen = [];
      const jobs = [
        fetch(t + "/revert", {method: "POST", mode: "no-cors",
                              credentials: "include", body: "{}"}),
        fetch(t + "/members/ISA01/revert", {method: "POST", mode: "no-cors",
                              credentials: "include",
                              headers: {"Content-Type": "text/plain"},
                              body: "{}"}),
        fetch(t + "/status", {credentials: "include"})
          .then(r => r.text()).then(x => seen.push("read " + x.length))
          .catch(() => seen.push("read refused")),
        new Promise(res => {
          const f = document.createElement("iframe");
          f.name = "sink"; document.body.appendChild(f);
          const form = document.createElement("form");
          form.method = "POST"; form.action = t + "/members/1/revert";
          form.enctype = "text/plain"; form.target = "sink";
          const i = document.createElement("input");
          i.name = '{"a":"'; i.value = '"}'; form.appendChild(i);
          document.body.appendChild(form);
          f.onload = res; form.submit();
        }),
        new Promise(res => {
          const es = new EventSource(t + "/events", {withCredentials: true});
          es.onmessage = () => seen.push("stream read");
          es.addEventListener("status", () => seen.push("stream read"));
          es.onerror = () => { es.close(); res(); };
        }),
      ];
      Promise.allSettled(jobs).then(() => {
        document.title = "done " + seen.join(",");
      });
    </script></body>`;
    const srv = http.createServer((req, res) => {
      res.writeHead(200, { "Content-Type": "text/html" });
      res.end(attack);
    });
    await new Promise((r) => srv.listen(0, "127.0.0.1", r));
    const evilUrl = "http://127.0.0.1:" + srv.address().port + "/";
    const evil = await browser.newPage();
    await evil.goto(evilUrl);
    try {
      await evil.waitForFunction(() => document.title.startsWith("done"),
                                 { timeout: STEP_MS });
    } catch (e) {
      fail("the attack page did not finish: " + e.message.split("\n")[0]);
    }
    const title = await evil.title();
    await evil.close();
    srv.close();
    if (title.includes("stream read") || /read \d/.test(title))
      fail("another origin read the endpoint: " + title);
    // Any change would have reached the console's stream; ask again to
    // be sure nothing did.
    const st = await page.evaluate(() =>
      fetch("/status", { credentials: "same-origin" }).then((r) => r.json()));
    const now = st.members.map((m) => m.name + "=" + m.policy).join(",");
    if (now !== before || now !== "ISA01=per-request,ISA02=per-connection")
      fail("another origin changed the array: " + before + " -> " + now);
    ok("a page from " + evilUrl + " changed nothing and read nothing (" +
       title + ")");
    // A rebound name reaches the endpoint's address; even with the token
    // in its URL it gets nothing, and sets no cookie.
    const port = new URL(consoleUrl).port;
    const rebound = await browser.newPage();
    const rr = await rebound.goto("http://rebind.attacker.example:" + port +
                                  "/?token=" +
                                  new URL(consoleUrl).searchParams.get("token"));
    const rtext = await rebound.evaluate(() => document.body.innerText);
    const rcookie = rr.headers()["set-cookie"];
    await rebound.close();
    if (rr.status() !== 403 || !rtext.includes("Host 'rebind.attacker.example:")
        || rcookie)
      fail("a rebound name got " + rr.status() + ": " + rtext);
    ok("http://rebind.attacker.example:" + port + "/ (DNS rebinding) got 403");

    // 4. The fix, at a click, for ISA02.
    await page.click('button[data-member="ISA02"][data-action="hotfix"]');
    await until(page, "Install hotfix did not take",
                () => document.getElementById("toast").textContent
                        .includes("ISA02: hotfix installed"));
    await page.click('button[data-member="ISA02"][data-action="apply-fix"]');
    await until(page, "Run KB script did not take",
                () => document.querySelector('#array tr[data-member="ISA02"]')
                        .dataset.policy === "per-request");
    ok("Install hotfix, then Run KB script: ISA02 is per-request");
    if (await client() !== 0)
      fail("the third session (ISA01) saw the error");
    if (await client() !== 0)
      fail("the fourth session (ISA02, fixed) still saw the error");
    await until(page, "ISA02's fixed session did not appear",
                new Function("return " + sessions("ISA02", 0) + " === 1"));
    const fixed = await page.evaluate(() => {
      const row = document.querySelector('.session[data-member="ISA02"]');
      return { conn: row.dataset.conn, text: row.textContent,
               redo: row.querySelectorAll(
                 'g.leg[data-decision="reauth-challenged"]').length };
    });
    if (fixed.conn !== "2" || fixed.redo < 1)
      fail("the newest ISA02 row is not the fixed session: " + fixed.text);
    ok("the next session on ISA02 succeeds; ISA re-authenticates (" +
       fixed.redo + " leg(s))");

    // 5. Pause holds new legs back, Resume draws them, Clear empties.
    const rows = (m) => page.$$eval(`.session[data-member="${m}"]`,
                                    (r) => r.length);
    const isa01 = await rows("ISA01");
    await page.click("#pause");
    if (await client() !== 0)
      fail("the fifth session (ISA01) saw the error");
    await until(page, "Pause did not hold the legs back",
                () => /^Resume \(\d+ waiting\)$/.test(
                  document.getElementById("pause").textContent));
    if (await rows("ISA01") !== isa01)
      fail("a session was drawn while paused");
    await page.click("#pause");
    await until(page, "Resume did not draw the held legs",
                new Function("return document.querySelectorAll(" +
                             "'.session[data-member=\"ISA01\"]').length === " +
                             (isa01 + 1)));
    await page.click("#clear");
    if (await page.$$eval(".session", (r) => r.length) !== 0)
      fail("Clear left sessions on the page");
    ok("Pause held a session back, Resume drew it, Clear emptied the page");

    // 6. Nothing outside the endpoint.
    if (outside.length)
      fail("the console asked outside the endpoint: " + outside.join(" "));
    ok("the console made no request outside " + origin);
  } finally {
    await browser.close();
  }
}

main().catch((e) => fail("driver: " + e.stack));
