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

const { fail, ok, client, until, withConsole } = require("./session_page");

const [consoleUrl, kbsim, listenerUrl, caFile, user] = process.argv.slice(2);

// One `kbsim client` session over HTTPS; resolves its exit code (1: the
// login refused, as Extended Protection behind offloading wants).
function session() {
  return client(kbsim, ["--url", listenerUrl, "--ca-file", caFile, "--user",
                       user, "--posts", "1"]);
}

withConsole(consoleUrl, async (page) => {
  const code = await session();
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
}).catch((e) => fail(e.message));
