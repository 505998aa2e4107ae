// har.js - a browser session through a listener, in a real headless
// Chromium over the DevTools protocol (puppeteer-core), written as HAR 1.2
// from the DevTools Network events, for `kbsim analyze` to read
// (tests/test_analyze.c runs it against `kbsim serve`).
//
//   node har.js LISTENER_URL USER PASSWORD OUT.har
//
// The session: the page /autodiscover/autodiscover.xml, loaded with the
// credentials in the URL (Chromium's own NTLM authenticates the
// connection; Exchange answers 405 to a GET), then from the page, on that
// kept-alive connection, a POST of GetUserOofSettings with its body, and
// a POST that re-authenticates as Communicator does: Authorization NTLM
// <type 1> and no body. Each request is one HAR entry with the headers
// Chromium really sent (Network.requestWillBeSentExtraInfo) and got
// (responseReceivedExtraInfo), the connection it went on
// (response.connectionId) and its timings. Chromium does not report the
// legs of its own NTLM handshake to DevTools (nor does its HAR export):
// the entries show each request as its last leg, without the
// Authorization Chromium added.
//
// Prints one line per step; exits 0 with the HAR written, 1 otherwise.
"use strict";

const fs = require("fs");
const puppeteer = require("puppeteer-core");

const [listener, user, password, out] = process.argv.slice(2);
// Communicator's NEGOTIATE, the support case's bytes.
const TYPE1 = "NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAADw==";
const OOF =
  '<?xml version="1.0" encoding="utf-8"?>\n' +
  '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" ' +
  'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" ' +
  'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">' +
  "<soap:Body><m:GetUserOofSettingsRequest><t:Mailbox>" +
  "<t:Address>alice@fabrikam.com</t:Address></t:Mailbox>" +
  "</m:GetUserOofSettingsRequest></soap:Body></soap:Envelope>";

function fail(msg) {
  console.log("FAIL " + msg);
  process.exit(1);
}

// A HAR headers array from a DevTools headers object.
function headers(h) {
  return Object.entries(h || {}).flatMap(([name, value]) =>
    String(value).split("\n").map((v) => ({ name, value: v })));
}

// The HAR entry of one request from what DevTools said about it.
function entry(r) {
  const sent = r.extraRequest ? r.extraRequest.headers : r.request.headers;
  const got = r.extraResponse ? r.extraResponse.headers
                              : (r.response ? r.response.headers : {});
  const ms = r.end !== undefined ? (r.end - r.request.timestamp) * 1000 : 0;
  const post = r.request.request.postData;
  // As DevTools' own export: the URL without the credentials it held.
  const url = new URL(r.request.request.url);
  url.username = url.password = "";
  return {
    startedDateTime: new Date(r.request.wallTime * 1000).toISOString(),
    time: ms,
    request: {
      method: r.request.request.method,
      url: url.href,
      httpVersion: r.response ? r.response.protocol.toUpperCase() : "HTTP/1.1",
      cookies: [],
      headers: headers(sent),
      queryString: [],
      ...(post !== undefined ? { postData: { mimeType: "text/xml",
                                             text: post } } : {}),
      headersSize: -1,
      bodySize: post !== undefined ? Buffer.byteLength(post) : 0,
    },
    response: {
      status: r.response ? r.response.status : 0,
      statusText: r.response ? r.response.statusText : "",
      httpVersion: r.response ? r.response.protocol.toUpperCase() : "",
      cookies: [],
      headers: headers(got),
      content: { size: r.size || 0,
                 mimeType: r.response ? r.response.mimeType : "" },
      redirectURL: "",
      headersSize: -1,
      bodySize: r.size || 0,
    },
    cache: {},
    timings: { send: 0, wait: ms, receive: 0 },
    serverIPAddress: r.response ? r.response.remoteIPAddress : "",
    connection: r.response ? String(r.response.connectionId) : "",
  };
}

async function main() {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-dev-shm-usage", "--proxy-server=direct://",
           "--proxy-bypass-list=*"],
  });
  const seen = new Map();
  const of = (id) => {
    if (!seen.has(id))
      seen.set(id, {});
    return seen.get(id);
  };
  try {
    const page = await browser.newPage();
    const cdp = await page.createCDPSession();
    await cdp.send("Network.enable");
    cdp.on("Network.requestWillBeSent", (e) => { of(e.requestId).request = e; });
    cdp.on("Network.requestWillBeSentExtraInfo",
           (e) => { of(e.requestId).extraRequest = e; });
    cdp.on("Network.responseReceived",
           (e) => { of(e.requestId).response = e.response; });
    cdp.on("Network.responseReceivedExtraInfo",
           (e) => { of(e.requestId).extraResponse = e; });
    cdp.on("Network.loadingFinished", (e) => {
      of(e.requestId).end = e.timestamp;
      of(e.requestId).size = e.encodedDataLength;
    });
    cdp.on("Network.loadingFailed", (e) => { of(e.requestId).end = e.timestamp; });

    const url = new URL("/autodiscover/autodiscover.xml", listener);
    url.username = encodeURIComponent(user);
    url.password = encodeURIComponent(password);
    // Until the network is idle (the favicon too), so the POSTs find the
    // authenticated connections idle and reuse one of them.
    const resp = await page.goto(url.href, { waitUntil: "networkidle0" });
    if (!resp || resp.status() !== 405)
      fail("the page answered " + (resp ? resp.status() : "nothing") +
           ", not Exchange's 405 to a GET");
    console.log("ok page loaded through the listener: 405 from Exchange");
    const statuses = await page.evaluate(async (oof, type1) => {
      // The page's URL holds the credentials, which fetch refuses in a
      // relative URL: the origin alone.
      const ews = location.origin + "/EWS/Exchange.asmx";
      const a = await fetch(ews, {
        method: "POST", body: oof,
        headers: { "Content-Type": "text/xml; charset=utf-8" } });
      await a.text();
      const b = await fetch(ews, {
        method: "POST", body: "",
        headers: { "Content-Type": "text/xml; charset=utf-8",
                   "Authorization": type1 } });
      await b.text();
      return [a.status, b.status];
    }, OOF, TYPE1);
    console.log("ok POSTs answered " + statuses.join(" and "));
    // The last events arrive after fetch resolves.
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    await browser.close();
  }
  const entries = [...seen.values()].filter((r) => r.request)
    .sort((a, b) => a.request.timestamp - b.request.timestamp).map(entry);
  const har = { log: { version: "1.2",
                       creator: { name: "kbsim tests/analyze/har.js",
                                  version: "1" },
                       pages: [], entries } };
  fs.writeFileSync(out, JSON.stringify(har, null, 2));
  console.log("ok " + entries.length + " entries written");
}

main().catch((e) => fail(String(e)));
