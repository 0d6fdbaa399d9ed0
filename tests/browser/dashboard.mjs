// Signs in to the aiwaf dashboard, adds an exemption, sees it listed, finds a blocked event,
// and saves screenshots. Usage: node dashboard.mjs ADMIN_URL TOKEN BLOCKED_IP OUT_DIR
import { launch, steps } from "./harness.mjs";
import assert from "node:assert/strict";

const [admin, token, blockedIp, out] = process.argv.slice(2);
const browser = await launch();
const { step, finish } = steps();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await step("unauthenticated visit lands on sign-in", async () => {
    await page.goto(`${admin}/`);
    assert.match(page.url(), /\/login$/);
  });
  await step("wrong token is refused", async () => {
    await page.fill("input[name=token]", "wrong");
    await page.click("button");
    assert.match(page.url(), /failed=1/);
  });
  await step("sign in with the token", async () => {
    await page.fill("input[name=token]", token);
    await page.click("button");
    await page.waitForURL(`${admin}/`);
    assert.ok(await page.locator("svg[aria-label='blocks per hour']").count() === 1);
    await page.screenshot({ path: `${out}/dashboard-overview.png`, fullPage: true });
  });
  await step("add an exemption and see it listed", async () => {
    await page.goto(`${admin}/exemptions`);
    await page.fill("input[name=ip]", "10.77.0.0/16");
    await page.fill("input[name=reason]", "browser test office");
    await page.click("form[action='/exemptions/add'] button");
    await page.waitForURL(`${admin}/exemptions`);
    const table = await page.locator("#exemptions").innerText();
    assert.ok(table.includes("10.77.0.0/16"), table);
    assert.ok(table.includes("browser test office"), table);
  });
  await step("find the blocked event and its evidence", async () => {
    await page.goto(`${admin}/events?ip=${blockedIp}`);
    const text = await page.locator("#events").innerText();
    assert.ok(text.includes(blockedIp), text);
    assert.ok(text.includes("Keyword block: .env"), text);
    await page.locator("#events details").first().click();
    await page.screenshot({ path: `${out}/dashboard-events.png`, fullPage: true });
  });
  await step("blacklist page lists the ban", async () => {
    await page.goto(`${admin}/blacklist`);
    assert.ok((await page.content()).includes(blockedIp));
    await page.screenshot({ path: `${out}/dashboard-blacklist.png`, fullPage: true });
  });
} finally {
  await browser.close();
}
finish();
