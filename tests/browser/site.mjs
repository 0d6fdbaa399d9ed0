// Issue 11 in a real browser: a person uses an admin-like site behind `aiwaf serve` with default
// settings — signs in, opens admin pages with their ~20 assets each, adds a post quickly, reads
// the blog, sends the contact form 0.7 s after it loaded, clicks "+" in a cart twice — and no
// response is ever a 403 or a 429 from aiwaf. Usage: node site.mjs PROXY_URL OUT_DIR
import { launch, steps } from "./harness.mjs";
import assert from "node:assert/strict";

const [proxy, out] = process.argv.slice(2);
const browser = await launch();
const { step, finish } = steps();
const blocked = [];
let responses = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("response", (r) => {
    responses++;
    if ((r.status() === 403 || r.status() === 429) && r.headers()["x-aiwaf-request-id"]) {
      blocked.push(`${r.status()} ${r.url()}`);
    }
  });
  await step("sign in to the admin (a password manager fills the form at once)", async () => {
    await page.goto(`${proxy}/admin/login/`);
    await page.fill("input[name=username]", "alice");
    await page.fill("input[name=password]", "correct horse");
    await page.waitForTimeout(500);
    await page.click("button");
    await page.waitForURL(`${proxy}/admin/`);
  });
  await step("Posts, then Add within seconds: every script and style loads", async () => {
    await page.click("#posts");
    await page.waitForURL(`${proxy}/admin/blog/post/`);
    await page.click("#add");
    await page.waitForURL(`${proxy}/admin/blog/post/add/`);
    await page.waitForLoadState("networkidle");
    const loaded = await page.evaluate(() => performance.getEntriesByType("resource").length);
    assert.ok(loaded >= 20, `only ${loaded} resources`);
  });
  await step("save the post 0.8 s after the form loaded", async () => {
    await page.fill("input[name=title]", "Hello <b>world</b>");
    await page.fill("input[name=content]", "Tom's post: select a product, then <i>pay</i>.");
    await page.waitForTimeout(800);
    await page.click("button");
    await page.waitForURL(/saved=1/);
  });
  await step("read three blog posts quickly", async () => {
    for (const p of ["/blog/one/", "/blog/two/", "/blog/three/"]) {
      await page.goto(`${proxy}${p}`);
      assert.match(await page.textContent("h1"), /Blog/);
    }
  });
  await step("send the contact form 0.7 s after it loaded", async () => {
    await page.goto(`${proxy}/contact/`);
    await page.fill("input[name=name]", "Seán O'Brien");
    await page.fill("input[name=email]", "sean@example.com");
    await page.fill("input[name=message]", "Drop me a line; 1 or 2 items please.");
    await page.waitForTimeout(700);
    await page.click("button");
    await page.waitForURL(/sent=1/);
  });
  await step("two clicks on + in the cart, 0.7 s apart", async () => {
    await page.goto(`${proxy}/cart/`);
    for (let k = 0; k < 2; k++) {
      await page.fill("input[name=item]", "7");
      await page.waitForTimeout(700);
      await page.click("button");
      await page.waitForURL(`${proxy}/cart/`);
    }
    await page.screenshot({ path: `${out}/site-cart.png` });
  });
  await step("the admin again: still not blocked", async () => {
    await page.goto(`${proxy}/admin/`);
    assert.match(await page.textContent("h1"), /Site administration/);
  });
  await step(`no 403 or 429 from aiwaf among the responses`, async () => {
    assert.ok(responses > 60, `only ${responses} responses`);
    assert.deepEqual(blocked, []);
  });
} finally {
  await browser.close();
}
finish();
