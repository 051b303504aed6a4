// Browser test of the smppgw agent console: headless Chromium (Debian's
// `chromium`) driven by playwright-core, against the real daemon, the SMSC
// simulator and the console, all started from the built binary by
// harness.mjs. Every step writes a screenshot to target/console-shots/.
//
// Run: `node tests/console/console.test.mjs` (after `cargo build` and
// tests/console/install.sh); `cargo test --test console` runs it too.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import assert from "node:assert/strict";
import { startStack, ROOT } from "./harness.mjs";

const LIMIT_MS = Number(process.env.CONSOLE_TEST_LIMIT_MS || 90_000);
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SHOTS = path.join(ROOT, "target", "console-shots");

const CUSTOMER = "+447911123456";
const CUSTOMER_TYPED = "+44 7911 123456";
const FIRST_TEXTER = "+819012345678";
const SCRIPTY = "<img src=x onerror=alert(1)>";

let passed = 0;
/** Screenshots the page when a step fails (set once the page exists). */
let onFail = null;
const failures = [];
const cleanups = [];

function log(...a) {
  console.log("[console-test]", ...a);
}

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed += 1;
    log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failures.push(name);
    log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
    if (onFail) await onFail(name).catch(() => {});
    throw e;
  }
}

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  for (const f of fs.readdirSync(SHOTS)) {
    if (f.endsWith(".png") || f.endsWith(".log")) fs.rmSync(path.join(SHOTS, f));
  }

  const stack = await startStack();
  cleanups.push(() => stack.stop());
  log("console at", stack.url());

  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "smppgw-console-chromium-"));
  cleanups.push(() => fs.rmSync(profile, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    locale: "en-GB",
    viewport: { width: 1280, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  cleanups.unshift(() => context.close());
  context.setDefaultTimeout(10_000);

  const page = context.pages()[0] || (await context.newPage());
  const dialogs = [];
  const pageErrors = [];
  const cspViolations = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });

  let shot = 0;
  const snap = async (name) => {
    shot += 1;
    const file = path.join(SHOTS, `${String(shot).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
  };

  onFail = (name) => page.screenshot({ path: path.join(SHOTS, `FAIL-${name.replace(/[^a-z0-9]+/gi, "-")}.png`), fullPage: true });

  const chatWith = (number) => page.getByRole("region", { name: `Chat with ${number}` });
  const transcriptOf = (number) => chatWith(number).locator("ol.transcript > li");

  /** Message ids shown in a chat, asserting none is shown twice. */
  const shownIds = async (number) => {
    const ids = await transcriptOf(number).evaluateAll((els) => els.map((e) => e.dataset.message));
    assert.equal(new Set(ids).size, ids.length, `a message shown twice: ${ids}`);
    return ids;
  };

  /** Waits until a chat shows exactly these message ids, in this order. */
  const idsBecome = async (number, expected) => {
    const deadline = Date.now() + 5_000;
    let ids;
    do {
      ids = await shownIds(number);
      if (ids.join() === expected.join()) return;
      await new Promise((r) => setTimeout(r, 50));
    } while (Date.now() < deadline);
    assert.deepEqual(ids, expected);
  };

  await step("sign in", async () => {
    await page.goto(stack.url());
    await page.getByLabel("Agent", { exact: true }).fill("alice");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("Signed in as").waitFor();
    await page.locator("#link[data-state=connected]").waitFor();
    await page.getByLabel("State", { exact: true }).selectOption({ label: "Ready" });
    await snap("signed-in");
  });

  await step("pick a service and check the number as it is typed", async () => {
    const svc = page.getByLabel("Service", { exact: true });
    await svc.selectOption(stack.service);
    const options = await svc.locator("option").allTextContents();
    if (stack.voiceService) {
      assert.ok(!options.includes(stack.voiceService), `a service without SMS is offered: ${options}`);
    }
    const number = page.getByLabel("Number", { exact: true });
    const send = page.getByRole("button", { name: "Send SMS" });
    await number.fill("12");
    await page.getByText("Invalid number").waitFor();
    assert.equal(await send.isDisabled(), true);
    await number.fill(stack.landline);
    await page.getByText("Landline or not a mobile").waitFor();
    assert.equal(await send.isDisabled(), true);
    await number.fill(CUSTOMER_TYPED);
    await page.getByText("Mobile number").waitFor();
    await snap("number-checked");
    await send.click();
    await chatWith(CUSTOMER).waitFor();
  });

  await step("the counter passes 160 into 2 parts and shows 70 for Japanese", async () => {
    const chat = chatWith(CUSTOMER);
    const input = chat.getByLabel("Message");
    const counter = chat.locator(".counter .used");
    await input.fill("Your engineer arrives at 10:30.");
    await assertText(counter, "31/160");
    await input.fill("x".repeat(160));
    await assertText(counter, "160/160");
    await input.press("End");
    await input.pressSequentially("y");
    await assertText(counter, "161/160 · 2 parts");
    await assertText(chat.locator(".counter .left"), "145 left");
    await snap("counter-two-parts");
    await input.fill("ご予約ありがとうございます");
    await assertText(counter, "13/70");
    await page.getByLabel("Language").selectOption("ja");
    const jaChat = page.getByRole("region", { name: `${CUSTOMER} とのチャット` });
    await jaChat.getByRole("button", { name: "送信", exact: true }).waitFor();
    await assertText(jaChat.locator(".counter .left"), "残り 57");
    await snap("japanese-labels-and-count");
    await page.getByLabel("言語").selectOption("en");
    await input.fill("");
  });

  await step("insert a predefined message and send it: Delivered", async () => {
    const chat = chatWith(CUSTOMER);
    await chat.getByRole("button", { name: "Predefined messages" }).click();
    const tpl = chat.locator(".templates button.tpl").filter({ hasText: stack.templateName });
    await tpl.first().click();
    const input = chat.getByLabel("Message");
    assert.equal(await input.inputValue(), stack.templateText);
    await snap("predefined-inserted");
    await input.press("Enter");
    const out = transcriptOf(CUSTOMER).filter({ hasText: stack.templateText });
    await out.waitFor();
    assert.equal(await input.inputValue(), "", "the input is cleared after sending");
    await out.locator(".status", { hasText: "Delivered" }).waitFor({ timeout: 20_000 });
    assert.ok((await out.locator("time").textContent()).match(/\d\d:\d\d/), "message has a time");
    await snap("delivered");
  });

  await step("a reply injected at the simulator shows highlighted", async () => {
    await stack.inject(CUSTOMER, "Thanks, see you at 10:30");
    const reply = transcriptOf(CUSTOMER).filter({ hasText: "Thanks, see you at 10:30" });
    await reply.waitFor({ timeout: 15_000 });
    assert.match(await reply.getAttribute("class"), /\bin\b/);
    const colours = await Promise.all(
      [reply, transcriptOf(CUSTOMER).filter({ hasText: stack.templateText })].map((l) =>
        l.evaluate((e) => getComputedStyle(e).backgroundColor),
      ),
    );
    assert.notEqual(colours[0], colours[1], "the customer's reply has its own colour");
    // A screen reader hears the reply, from the chat's status line; the
    // transcript is not a live region (a load would be read out whole).
    const said = chatWith(CUSTOMER).getByRole("status");
    assert.equal(await said.textContent(), "Customer: Thanks, see you at 10:30");
    assert.equal(await chatWith(CUSTOMER).locator("ol.transcript").getAttribute("aria-live"), null);
    await snap("reply-highlighted");
  });

  await step("a reply that looks like markup stays text and runs nothing", async () => {
    await stack.inject(CUSTOMER, SCRIPTY);
    const reply = transcriptOf(CUSTOMER).filter({ hasText: SCRIPTY });
    await reply.waitFor({ timeout: 15_000 });
    assert.equal(await reply.locator(".text").textContent(), SCRIPTY);
    assert.equal(await page.locator("main img").count(), 0, "no element was created from customer text");
    await page.waitForTimeout(300);
    assert.deepEqual(dialogs, [], "no script ran");
    await snap("markup-stays-text");
  });

  await step("console restarted and the event stream cut: nothing lost, nothing twice", async () => {
    const before = await shownIds(CUSTOMER);
    await stack.stopConsole();
    await page.locator("#link[data-state=reconnecting]").waitFor();
    // While the console is down, the customer writes; the agent's page must
    // get it from the durable event log once it reconnects.
    await stack.inject(CUSTOMER, "Are you still there?");
    await stack.startConsole();
    const reply = transcriptOf(CUSTOMER).filter({ hasText: "Are you still there?" });
    await reply.waitFor({ timeout: 20_000 });
    await page.locator("#link[data-state=connected]").waitFor();
    // A send after the restart goes through the new console.
    const input = chatWith(CUSTOMER).getByLabel("Message");
    await input.fill("Yes, I am here.");
    await chatWith(CUSTOMER).getByRole("button", { name: "Send", exact: true }).click();
    await transcriptOf(CUSTOMER).filter({ hasText: "Yes, I am here." }).waitFor();
    const after = await shownIds(CUSTOMER);
    assert.equal(after.length, before.length + 2, `before ${before} after ${after}`);
    await snap("after-console-restart");
  });

  await step("a reload keeps everything", async () => {
    const before = await shownIds(CUSTOMER);
    await page.reload();
    await page.getByText("Signed in as").waitFor();
    await transcriptOf(CUSTOMER).filter({ hasText: "Yes, I am here." }).waitFor();
    await page.waitForTimeout(500);
    const after = await shownIds(CUSTOMER);
    assert.deepEqual(after, before);
    await transcriptOf(CUSTOMER)
      .filter({ hasText: stack.templateText })
      .locator(".status", { hasText: "Delivered" })
      .waitFor();
    await snap("after-reload");
  });

  await step("a transcript longer than a page: Show earlier messages brings the rest, in place", async () => {
    const all = await shownIds(CUSTOMER);
    assert.ok(all.length >= 5, `too few messages to page through: ${all}`);
    // Two messages a page (the console asks for 200 otherwise).
    await page.goto(`${stack.url()}?transcript_page=2`);
    const chat = chatWith(CUSTOMER);
    const earlier = chat.getByRole("button", { name: "Show earlier messages" });
    await earlier.waitFor();
    await idsBecome(CUSTOMER, all.slice(-2));
    await page.getByLabel("Language").selectOption("ja");
    await page
      .getByRole("region", { name: `${CUSTOMER} とのチャット` })
      .getByRole("button", { name: "以前のメッセージを表示" })
      .waitFor();
    await page.getByLabel("言語").selectOption("en");
    await snap("earlier-button");
    // A short transcript scrolled to its top: the earlier page goes above
    // without moving the message in view (nor scrolling to the bottom).
    const list = chat.locator("ol.transcript");
    await list.evaluate((el) => {
      el.style.minHeight = "0";
      el.style.maxHeight = "3rem";
      el.scrollTop = 0;
    });
    const offsetOf = (id) =>
      list.evaluate((el, id) => {
        const li = el.querySelector(`li[data-message="${id}"]`);
        return li.getBoundingClientRect().top - el.getBoundingClientRect().top;
      }, id);
    const anchor = all.at(-2);
    const before = await offsetOf(anchor);
    await earlier.click();
    await idsBecome(CUSTOMER, all.slice(-4));
    // Heard as one line, not as the messages it brought.
    assert.equal(await chat.getByRole("status").textContent(), "2 earlier messages shown");
    const after = await offsetOf(anchor);
    assert.ok(Math.abs(after - before) <= 1, `the message in view stayed in place: ${before} → ${after}`);
    assert.ok(
      await list.evaluate((el) => el.scrollTop + el.clientHeight < el.scrollHeight - 1),
      "the transcript did not scroll to the bottom",
    );
    await list.evaluate((el) => (el.style.minHeight = el.style.maxHeight = ""));
    // The rest, from the keyboard (the button keeps the focus); the last
    // page hides the button and the focus moves on to the message input.
    await earlier.focus();
    for (let shown = 4; shown < all.length; shown += 2) {
      await page.keyboard.press("Enter");
      await idsBecome(CUSTOMER, all.slice(-(shown + 2)));
    }
    await earlier.waitFor({ state: "hidden" });
    assert.equal(await chat.getByLabel("Message").evaluate((e) => e === document.activeElement), true);
    assert.equal(await transcriptOf(CUSTOMER).first().getAttribute("data-message"), all[0]);
    await snap("earlier-messages");
    // Back to the console's own page size: one page, no button.
    await page.goto(stack.url());
    await idsBecome(CUSTOMER, all);
    assert.equal(await earlier.isHidden(), true);
  });

  await step("End Chat: a later reply does not show", async () => {
    const chat = chatWith(CUSTOMER);
    const before = await shownIds(CUSTOMER);
    await chat.getByRole("button", { name: "End Chat" }).click();
    await chat.getByText("Chat ended").waitFor();
    assert.equal(await chat.getByLabel("Message").isDisabled(), true);
    await stack.inject(CUSTOMER, "One more question");
    // Wait until the daemon has certainly handled the reply: a marker
    // message from another customer, sent after it, must arrive first.
    await stack.inject(FIRST_TEXTER, "Hello, I would like to change my booking");
    await page
      .locator("#requests li")
      .filter({ hasText: FIRST_TEXTER })
      .getByRole("button", { name: "Accept" })
      .waitFor({ timeout: 15_000 });
    assert.equal(await transcriptOf(CUSTOMER).filter({ hasText: "One more question" }).count(), 0);
    assert.deepEqual(await shownIds(CUSTOMER), before);
    await snap("ended-and-request");
  });

  await step("a customer who texts first appears with Accept and opens on it", async () => {
    const req = page.locator("#requests li").filter({ hasText: FIRST_TEXTER });
    await req.getByText("Hello, I would like to change my booking").waitFor();
    await req.getByRole("button", { name: "Accept" }).click();
    const chat = chatWith(FIRST_TEXTER);
    await chat.waitFor();
    await transcriptOf(FIRST_TEXTER).filter({ hasText: "Hello, I would like to change my booking" }).waitFor();
    assert.equal(await page.locator("#requests li").filter({ hasText: FIRST_TEXTER }).count(), 0);
    // Accept puts the cursor in the chat's message input.
    await page.waitForFunction(() => document.activeElement && document.activeElement.tagName === "TEXTAREA");
    await page.keyboard.type("Of course, which date suits you?");
    await page.keyboard.press("Enter");
    await transcriptOf(FIRST_TEXTER)
      .filter({ hasText: "Of course, which date suits you?" })
      .locator(".status", { hasText: "Delivered" })
      .waitFor({ timeout: 20_000 });
    await snap("request-accepted");
  });

  await step("a message the carrier cannot deliver shows Failed with the reason", async () => {
    await stack.scenario({ fail_prefixes: [FIRST_TEXTER.slice(1, 3)] });
    const chat = chatWith(FIRST_TEXTER);
    await chat.getByLabel("Message").fill("This one will not arrive.");
    await chat.getByRole("button", { name: "Send", exact: true }).click();
    const failed = transcriptOf(FIRST_TEXTER).filter({ hasText: "This one will not arrive." }).locator(".status");
    await failed.filter({ hasText: /^Failed: .+/ }).waitFor({ timeout: 20_000 });
    assert.equal(await chat.getByRole("status").textContent(), "Failed: This one will not arrive.");
    await stack.scenario({ fail_prefixes: [] });
    await snap("failed-with-reason");
  });

  await step("a reload keeps the accepted chat, and a new sign-in brings it back", async () => {
    await page.reload();
    await transcriptOf(FIRST_TEXTER).filter({ hasText: "Of course, which date suits you?" }).waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();
    assert.equal(await chatWith(FIRST_TEXTER).count(), 0);
    await page.getByLabel("Agent", { exact: true }).fill("alice");
    await page.getByRole("button", { name: "Sign in" }).click();
    await transcriptOf(FIRST_TEXTER).filter({ hasText: "Hello, I would like to change my booking" }).waitFor();
    await shownIds(FIRST_TEXTER);
    assert.equal(await chatWith(CUSTOMER).count(), 0, "the ended chat stays closed");
    await snap("console");
  });

  await step("on a call (Busy): Send SMS beside the customer's number opens the chat", async () => {
    await page.goto(`${stack.url()}?call=${encodeURIComponent(FIRST_TEXTER)}&service=${stack.service}`);
    assert.equal(await page.getByLabel("State", { exact: true }).inputValue(), "busy");
    const panel = page.getByRole("region", { name: "Contact info" });
    const sms = panel.getByRole("button", { name: "Send SMS" });
    await sms.waitFor();
    await page.getByLabel("State", { exact: true }).selectOption({ label: "After Call Work" });
    await sms.click();
    await page.waitForFunction(
      (n) => document.activeElement && document.activeElement.closest(`[aria-label="Chat with ${n}"]`),
      FIRST_TEXTER,
    );
    await transcriptOf(FIRST_TEXTER).filter({ hasText: "Of course, which date suits you?" }).waitFor();
    await snap("on-a-call");
  });

  await step("no script error, no dialog, no policy violation", async () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(dialogs, []);
    assert.deepEqual(cspViolations, []);
  });
}

async function assertText(locator, expected) {
  const deadline = Date.now() + 5_000;
  let last = null;
  while (Date.now() < deadline) {
    last = (await locator.textContent()) || "";
    if (last.trim() === expected) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(last && last.trim(), expected);
}

async function cleanup() {
  for (const c of cleanups.splice(0)) {
    try {
      await c();
    } catch (e) {
      log("cleanup:", e.message);
    }
  }
}

const watchdog = setTimeout(async () => {
  log(`FAIL the test took longer than ${LIMIT_MS} ms`);
  failures.push("time limit");
  await cleanup();
  console.log(`${passed} passed, ${failures.length} failed`);
  process.exit(1);
}, LIMIT_MS);

try {
  await main();
} catch (e) {
  if (!failures.length) {
    failures.push("setup");
    log("FAIL setup:", e && e.stack ? e.stack : e);
  }
} finally {
  clearTimeout(watchdog);
  await cleanup();
}
console.log(`${passed} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
