// An NTLM client that negotiates OEM strings only, with the type 3 of
// httpntlm 1.7.7 (npm; not kbsim's code): its NEGOTIATE asks for NTLM and
// OEM alone (flags 0x00000202), and httpntlm writes the AUTHENTICATE's
// strings in the character set the CHALLENGE agreed but always sets the
// same fixed flags word, UNICODE included (its ntlm.js writes
// NTLM_TYPE2_FLAGS whatever it negotiated). A server that reads the strings
// by the AUTHENTICATE's own flags refuses it ("UserName has an odd number
// of bytes for UTF-16"); one that reads them as the CHALLENGE agreed, as
// Samba does, signs the user in.
//
// Usage: node oem_client.js URL DOMAIN USER PASSWORD [BODY_FILE]
// POSTs BODY_FILE (an EWS request; default an empty SOAP envelope).
// Prints the final status and the flags of the three messages, one line.
'use strict';
const fs = require('fs');
const http = require('http');
const ntlm = require('httpntlm/ntlm');

const [url, domain, username, password, bodyFile] = process.argv.slice(2);
const agent = new http.Agent({keepAlive: true, maxSockets: 1});
const body = bodyFile ? fs.readFileSync(bodyFile) :
    '<?xml version="1.0" encoding="utf-8"?><soap:Envelope ' +
    'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body/>' +
    '</soap:Envelope>';

function type1() {
  const b = Buffer.alloc(32);
  b.write('NTLMSSP\0', 0, 'ascii');
  b.writeUInt32LE(1, 8);
  b.writeUInt32LE(0x00000202, 12);  // NTLM | OEM: no UNICODE
  return b;                         // empty domain and workstation
}

function flagsOf(header) {
  const raw = Buffer.from(header.replace(/^NTLM /, ''), 'base64');
  return raw.readUInt32LE(raw.readUInt32LE(8) === 2 ? 20 :
                          raw.readUInt32LE(8) === 3 ? 60 : 12);
}

function post(auth, withBody) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST', agent,
      headers: {'Authorization': auth,
                'Content-Type': 'text/xml; charset=utf-8',
                'Content-Length': withBody ? Buffer.byteLength(body) : 0}
    }, (res) => { res.resume(); res.on('end', () => resolve(res)); });
    req.on('error', reject);
    req.end(withBody ? body : undefined);
  });
}

(async () => {
  const t1 = 'NTLM ' + type1().toString('base64');
  const res1 = await post(t1, false);
  const www = res1.headers['www-authenticate'];
  if (res1.statusCode !== 401 || !www) throw new Error('no challenge: ' + res1.statusCode);
  const msg2 = ntlm.parseType2Message(www, (e) => { throw e; });
  const t3 = ntlm.createType3Message(msg2, {username, password, domain,
                                            workstation: 'NODE'});
  const res3 = await post(t3, true);
  console.log(res3.statusCode + ' type1 0x' + flagsOf(t1).toString(16) +
              ' type2 0x' + flagsOf(www).toString(16) +
              ' type3 0x' + flagsOf(t3).toString(16));
  agent.destroy();
})().catch((e) => { console.error('oem_client: ' + e.message); process.exit(1); });
