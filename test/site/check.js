// test/site/check.js: opens every page of a site written by pg_pipeline_site
// in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
// and fails on a console error, a page error, a dialog, a failed request, a
// response >= 400, a link that does not resolve to a file of the site (or an
// anchor of the page), or an external asset. Checks the pictures (lineage
// SVG, column lineage SVG, charts), that names are shown as text, not
// markup, and takes screenshots of the index and one pipeline page.
// First it checks a deliberately broken page, so that the checker can fail.
//
// Usage: node check.js SITE_DIR SHOT_DIR EXPECT_JSON
// EXPECT_JSON: {"names": [...pipeline names...], "shot": "pipeline-N.html",
//               "dotted": "pipeline-M.html"}
// Prints "ok - ..." / "not ok - ..." lines and "N passed, N failed".
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { pathToFileURL, fileURLToPath } = require('url');

const [siteDir, shotDir, expectFile] = process.argv.slice(2);
const expect = JSON.parse(fs.readFileSync(expectFile, 'utf8'));
let passed = 0, failed = 0;
function ok(cond, msg, detail) {
    if (cond) { passed++; console.log('ok - ' + msg); }
    else { failed++; console.log('not ok - ' + msg + (detail ? '\n    ' + detail : '')); }
}

// checkPage opens one file and returns the problems it finds there.
async function checkPage(context, file, root) {
    const problems = [];
    const page = await context.newPage();
    page.on('console', m => { if (m.type() === 'error') problems.push('console error: ' + m.text()); });
    page.on('pageerror', e => problems.push('page error: ' + e.message));
    page.on('dialog', d => { problems.push('dialog: ' + d.message()); d.dismiss().catch(() => {}); });
    page.on('requestfailed', r => problems.push('failed request: ' + r.url() + ' ' + (r.failure() || {}).errorText));
    page.on('response', r => { if (r.status() >= 400) problems.push('HTTP ' + r.status() + ': ' + r.url()); });
    page.on('request', r => {
        if (!r.url().startsWith('file:') && !r.url().startsWith('data:'))
            problems.push('external request: ' + r.url());
    });
    const url = pathToFileURL(file).href;
    await page.goto(url, { waitUntil: 'load' });
    const links = await page.$$eval('[href], [src], [xlink\\:href]', els => els.map(e =>
        e.getAttribute('href') || e.getAttribute('src') || e.getAttribute('xlink:href')));
    const ids = new Set(await page.$$eval('[id]', els => els.map(e => e.id)));
    for (const link of links) {
        if (link.startsWith('data:')) continue;
        if (link.startsWith('#')) {
            if (!ids.has(decodeURIComponent(link.slice(1)))) problems.push('broken anchor: ' + link);
            continue;
        }
        let target;
        try { target = new URL(link, url); } catch (e) { problems.push('bad link: ' + link); continue; }
        if (target.protocol !== 'file:') { problems.push('external link: ' + link); continue; }
        const p = fileURLToPath(target);
        if (!p.startsWith(path.resolve(root) + path.sep) || !fs.existsSync(p) || !fs.statSync(p).isFile())
            problems.push('broken link: ' + link);
    }
    await page.close();
    return { problems, links: links.length };
}

(async () => {
    const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pp-site-chromium-'));
    const context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: '/usr/bin/chromium',
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
               '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        viewport: { width: 1280, height: 900 },
    });
    try {
        // the checker fails on a broken page (so that this test can fail)
        const bad = fs.mkdtempSync(path.join(os.tmpdir(), 'pp-site-bad-'));
        fs.writeFileSync(path.join(bad, 'index.html'),
            '<!DOCTYPE html><html><head><title>bad</title><link rel="icon" href="data:,"></head><body>' +
            '<a href="nowhere.html">x</a><a href="#nope">y</a><img src="missing.png">' +
            '<script>console.error("boom")</script></body></html>');
        const b = await checkPage(context, path.join(bad, 'index.html'), bad);
        const want = ['broken link: nowhere.html', 'broken anchor: #nope', 'console error: boom'];
        ok(want.every(w => b.problems.some(p => p.startsWith(w))) && b.problems.some(p => p.includes('missing.png')),
           'the checker catches a broken link, a broken anchor, a console error and a failed request',
           b.problems.join('; '));
        fs.rmSync(bad, { recursive: true, force: true });

        const files = fs.readdirSync(siteDir).filter(f => f.endsWith('.html')).sort();
        ok(files.includes('index.html') && files.length === expect.names.length + 1,
           `the site has index.html and one page per pipeline (${files.length} files)`, files.join(' '));
        for (const f of files) {
            const r = await checkPage(context, path.join(siteDir, f), siteDir);
            ok(r.problems.length === 0, `${f}: no console error, failed request or broken link (${r.links} links)`,
               r.problems.join('\n    '));
        }

        // what a person sees: names as text, pictures present
        const page = await context.newPage();
        await page.goto(pathToFileURL(path.join(siteDir, 'index.html')).href);
        const linkTexts = await page.$$eval('#pipelines a', els => els.map(e => e.textContent));
        ok(expect.names.every(n => linkTexts.includes(n)),
           'the index links every pipeline under its exact name', JSON.stringify(linkTexts));
        ok(await page.$$eval('script', s => s.length) === 0, 'no script element on the index (names are escaped)');
        ok(await page.$$eval('#lineage svg g.node', n => n.length) >= 4, 'the index draws the whole lineage as inline SVG');
        fs.mkdirSync(shotDir, { recursive: true });
        await page.screenshot({ path: path.join(shotDir, 'index.png'), fullPage: true });
        console.log('screenshot: ' + path.join(shotDir, 'index.png'));
        await page.close();

        for (const f of files.filter(f => f !== 'index.html')) {
            const p = await context.newPage();
            await p.goto(pathToFileURL(path.join(siteDir, f)).href);
            const h1 = await p.$eval('h1', e => e.textContent);
            ok(expect.names.includes(h1), `${f}: titled with its pipeline's exact name`, h1);
            ok(await p.$$eval('script', s => s.length) === 0, `${f}: no script element`);
            ok(await p.$$eval('#lineage svg g.node', n => n.length) >= 2, `${f}: the lineage around the target is an inline SVG`);
            ok((await p.$$eval('#definition pre', e => e.length)) === 1, `${f}: the definition shows config_of`);
            if (f === expect.shot) {
                ok(await p.$$eval('#columns svg g.node', n => n.length) >= 4, `${f}: the column lineage is an inline SVG`);
                ok(await p.$$eval('#chart-rows rect', n => n.length) >= 3 &&
                   await p.$$eval('#chart-durations circle', n => n.length) >= 3,
                   `${f}: the chart of rows and durations has a mark per run`);
                await p.screenshot({ path: path.join(shotDir, 'pipeline.png'), fullPage: true });
                console.log('screenshot: ' + path.join(shotDir, 'pipeline.png'));
            }
            if (f === expect.dotted) {
                ok(await p.$$eval('#lineage svg g.node path, #lineage svg g.node polygon',
                                  n => n.some(e => (e.getAttribute('stroke-dasharray') || '') !== '')),
                   `${f}: the missing source is drawn dotted`);
            }
            await p.close();
        }
    } catch (e) {
        ok(false, 'the browser check ran', e.stack || String(e));
    } finally {
        await context.close();
        fs.rmSync(userDataDir, { recursive: true, force: true });
    }
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
})();
