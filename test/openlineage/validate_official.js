// test/openlineage/validate_official.js SPEC_DIR DOCS_DIR EVENT.json...
// Validates each event against the official OpenLineage schema its
// schemaURL names, and each facet (run, job, dataset, input and output
// facets) against the schema its _schemaURL names: an openlineage.io URL
// is read from SPEC_DIR (the official schemas), a pg_pipeline URL from the
// JSON Schemas shipped in DOCS_DIR (docs/openlineage). A URL that maps to
// no file is a failure. Prints "ok - ..." / "not ok - ..." per event and
// exits non-zero when any check failed. As a module (collector.js),
// makeValidator(SPEC_DIR, DOCS_DIR) returns a function that gives an
// event's problems, none when it is valid.
'use strict';
const fs = require('fs');
const path = require('path');
const Ajv2020 = require('ajv/dist/2020');
const addFormats = require('ajv-formats');

const OL = 'https://openlineage.io/spec/';
const PP = 'https://github.com/pg-pipeline/pg_pipeline/blob/v0.2.0/docs/openlineage/';
function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap(d =>
    d.isDirectory() ? walk(path.join(dir, d.name)) : d.name.endsWith('.json') ? [path.join(dir, d.name)] : []);
}

// makeValidator loads the schemas once; the function it returns checks one
// event and its facets, and returns [checks, problems].
function makeValidator(specDir, docsDir) {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  const ids = new Set();
  for (const f of walk(specDir).concat(walk(docsDir))) {
    const s = JSON.parse(fs.readFileSync(f, 'utf8'));
    if (s.$id && !ids.has(s.$id)) { ajv.addSchema(s); ids.add(s.$id); }
  }
  return function validate(e) {
    let checks = 0;
    const problems = [];
    function check(url, value, where) {
      checks++;
      const base = String(url).split('#')[0];
      if (!(base.startsWith(OL) || base.startsWith(PP)) || !ids.has(base)) {
        problems.push(`${where}: ${url} names no shipped schema`); return;
      }
      let v;
      try { v = ajv.getSchema(url); } catch (err) { v = null; }
      if (!v) { problems.push(`${where}: cannot resolve ${url}`); return; }
      if (!v(value)) problems.push(`${where}: ${ajv.errorsText(v.errors)}`);
    }
    function facets(obj, where) {
      for (const [name, facet] of Object.entries(obj || {})) {
        if (!facet || typeof facet !== 'object' || !facet._schemaURL) {
          checks++; problems.push(`${where}.${name}: no _schemaURL`); continue;
        }
        check(facet._schemaURL, facet, `${where}.${name}`);
      }
    }
    check(e.schemaURL, e, 'event');
    facets(e.run && e.run.facets, 'run.facets');
    facets(e.job && e.job.facets, 'job.facets');
    for (const [kind, extra] of [['inputs', 'inputFacets'], ['outputs', 'outputFacets']])
      (e[kind] || []).forEach((d, i) => {
        facets(d.facets, `${kind}[${i}].facets`);
        facets(d[extra], `${kind}[${i}].${extra}`);
      });
    return [checks, problems];
  };
}
module.exports = { makeValidator };

if (require.main === module) {
  const [specDir, docsDir, ...files] = process.argv.slice(2);
  const validate = makeValidator(specDir, docsDir);
  let checks = 0, failures = 0, bad = 0;
  for (const file of files) {
    const e = JSON.parse(fs.readFileSync(file, 'utf8'));
    const [n, problems] = validate(e);
    checks += n; failures += problems.length;
    problems.forEach(p => console.log(`  ${p}`));
    if (problems.length) bad++;
    console.log(`${problems.length ? 'not ok' : 'ok'} - ${path.basename(file)} (${e.eventType}) valid against the official schema and facet schemas`);
  }
  console.log(`# official schemas: ${checks} checks, ${failures} failed`);
  process.exit(bad ? 1 : 0);
}
