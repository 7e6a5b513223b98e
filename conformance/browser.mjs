// A real browser (Debian's Chromium, driven by playwright-core) uses the wallet and the officer
// page as people would: sign in, pick fields, show the QR, take the QR off the screen (zbarimg
// reads the element's screenshot), submit it on /check, then again after the licence is revoked.
// usage: node browser.mjs BASE_URL HOLDER_CODE LICENSE_ID ADMIN_TOKEN OUT_DIR
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
const require = createRequire(process.env.ELICENSE_NODE_MODULES + '/');
const { chromium } = require('playwright-core');

const [base, holder, licenseId, token, out] = process.argv.slice(2);
const fail = (msg) => { console.error('FAIL ' + msg); process.exitCode = 1; };
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
  await page.goto(base + '/wallet');
  await page.fill('#holder', holder);
  await page.click('#login');
  const card = page.locator(`.card[data-id="${licenseId}"]`);
  await card.waitFor();
  await card.locator('input[value="sex"]').check();
  await card.locator('input[value="birth_date"]').check();
  await card.locator('.showqr').click();
  await page.locator('#qr svg').waitFor();
  await page.screenshot({ path: `${out}/wallet.png`, fullPage: true });
  await page.locator('#qr').screenshot({ path: `${out}/wallet-qr.png` });
  const shown = (await page.textContent('#code')).trim();
  const scanned = execFileSync('zbarimg', ['-q', '--raw', `${out}/wallet-qr.png`]).toString().trim();
  if (scanned !== shown) fail(`the QR on screen decodes to ${scanned.slice(0, 30)}..., not the code shown`);

  const check = async (name) => {
    await page.goto(base + '/check');
    await page.fill('#code', scanned);
    await page.click('#go');
    await page.locator('#verdict[data-verdict]').waitFor();
    await page.screenshot({ path: `${out}/${name}.png`, fullPage: true });
    const verdict = await page.getAttribute('#verdict', 'data-verdict');
    const fields = await page.$$eval('#fields dt', (dts) => dts.map((d) => d.textContent).sort());
    return { verdict, fields };
  };
  const first = await check('check-valid');
  if (first.verdict !== 'valid') fail(`verdict ${first.verdict}, expected valid`);
  // sex and birth_date chosen; holder_name is the type's minimum.
  if (JSON.stringify(first.fields) !== JSON.stringify(['birth_date', 'holder_name', 'sex'])) fail(`fields ${first.fields}`);

  const r = await fetch(`${base}/v1/licenses/${licenseId}/status`, {
    method: 'POST',
    headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' },
    body: JSON.stringify({ status: 'revoked', reason: 'browser test' }),
  });
  if (!r.ok) fail('revocation through the API failed');
  const second = await check('check-revoked');
  if (second.verdict !== 'revoked') fail(`after revocation: verdict ${second.verdict}, expected revoked`);
  console.log(`browser: wallet showed ${shown.length}-char code; /check said ${first.verdict} with [${first.fields}], then ${second.verdict}`);
} finally {
  await browser.close();
}
