// Reads TAP on standard input with node-tap's tap-parser (from npm, not
// kbsim's code) and prints one JSON line: ok, count, pass, fail, the names
// of the failures. argv[2]: the node_modules directory holding it.
'use strict';
const { Parser } = require(process.argv[2] + '/tap-parser');
let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const p = new Parser((r) => {
    console.log(JSON.stringify({
      ok: r.ok, count: r.count, pass: r.pass, fail: r.fail,
      failures: r.failures.map((f) => f.name),
    }));
  });
  p.end(input);
});
