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

const { fail, ok, client, until, withConsole } = require("./session_page");

const [consoleUrl, kbsim, listenerUrl, ccache, user] = process.argv.slice(2);

// One `kbsim client` session with the user's Kerberos ticket; resolves
// its exit code.
function session() {
  return client(kbsim, ["--url", listenerUrl, "--krb5-ccache", ccache,
                       "--user", user, "--posts", "1"]);
}

withConsole(consoleUrl, async (page) => {
  const code = await session();
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
}).catch((e) => fail(e.message));
