// test/openlineage/collector.js SPEC_DIR DOCS_DIR PORT DIR
// A stand-in OpenLineage collector for the delivery test
// (test/t/013_openlineage_delivery.pl): an HTTP server on 127.0.0.1:PORT
// that takes POSTed events, validates each against the official schemas
// (validate_official.js), and appends a line to DIR/received.jsonl for
// every event it answers 2xx: {"valid": bool, "problems": [...], "event": {...}}.
// An invalid event is answered 400 and recorded too, so the test can tell.
// How it answers is read from DIR/mode before each request:
//   ok (or no file)  200
//   500              500, event not recorded
//   slow MS          waits MS milliseconds, then 200
//   refuse           400, event not recorded
// It writes DIR/ready once it listens.
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');
const { makeValidator } = require('./validate_official.js');

const [specDir, docsDir, port, dir] = process.argv.slice(2);
const validate = makeValidator(specDir, docsDir);

function mode() {
  try { return fs.readFileSync(path.join(dir, 'mode'), 'utf8').trim() || 'ok'; } catch (e) { return 'ok'; }
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', c => chunks.push(c));
  req.on('end', () => {
    const m = mode();
    const answer = () => {
      if (m === '500') { res.writeHead(500); res.end('failing on purpose'); return; }
      if (m === 'refuse') { res.writeHead(400); res.end('refusing on purpose'); return; }
      let event = null, problems;
      try {
        event = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        problems = req.method === 'POST' && /application\/json/.test(req.headers['content-type'] || '')
          ? validate(event)[1] : ['not a POST of application/json'];
      } catch (e) { problems = [`not JSON: ${e.message}`]; }
      fs.appendFileSync(path.join(dir, 'received.jsonl'),
        JSON.stringify({ valid: problems.length === 0, problems, event }) + '\n');
      res.writeHead(problems.length ? 400 : 200, { 'Content-Type': 'application/json' });
      res.end('{}');
    };
    const slow = /^slow (\d+)$/.exec(m);
    if (slow) setTimeout(answer, Number(slow[1])); else answer();
  });
});
server.listen(Number(port), '127.0.0.1', () => fs.writeFileSync(path.join(dir, 'ready'), String(process.pid)));
