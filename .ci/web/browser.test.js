// The pages that act, in a real Chromium: a key made in the browser, a text deposited and its
// receipt checked in the page, the receipt tampered with and the failing part named, a vote in a
// live round and its decision, a withdrawal; axe-core's rules on every main page; screenshots.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createRequire } from "node:module";
import { mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { api, cleanup, commons, eventually, field, ok, person, scratch } from "./commons.js";

// The packages come from the install .ci/web/run made in the cache, pinned by package-lock.json.
const require = createRequire(join(process.env.SUBSTRATE_WEB_MODULES ?? join(import.meta.dirname, "node_modules"), "_"));
const { chromium } = require("playwright-core");
const { default: AxeBuilder } = require("@axe-core/playwright");

const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];
/// The voting window of the commons founded here: long enough for the browser to vote, short
/// enough to wait for the decision.
const WINDOW_SECONDS = 20;

const screenshots = process.env.SUBSTRATE_SCREENSHOTS ?? mkdtempSync(join(tmpdir(), "substrate-screenshots-"));
mkdirSync(screenshots, { recursive: true });

const story = "The dough that breathes.\n\nMy grandmother folded it at dawn, twice, then covered it with the blue cloth and waited for the kitchen to warm.\n";

describe("the pages in Chromium", () => {
  let dir, node, steward, context, page, did, cid, receiptText;

  before(async () => {
    dir = scratch("browser");
    steward = person(dir, "steward");
    node = await commons(dir, { name: "Kitchen Table", stewards: [steward.did], window: `${WINDOW_SECONDS}s` });
    context = await chromium.launchPersistentContext(join(dir, "chromium-profile"), {
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      headless: true,
      args: CHROMIUM_ARGS,
      acceptDownloads: true,
      baseURL: node.url,
      viewport: { width: 1200, height: 900 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    // The confirmations before a key is replaced or a text withdrawn are accepted.
    page.on("dialog", (dialog) => dialog.accept());
    page.on("pageerror", (error) => console.error(`page error: ${error.message}`));
  });

  after(async () => {
    await context?.close();
    await node?.stop();
    console.log(`screenshots: ${screenshots}`);
    cleanup(dir);
  });

  /// Opens `path`, requires a page (not a 404), and waits until app.js has wired it.
  async function open(path) {
    const response = await page.goto(path);
    assert.equal(response.status(), 200, `GET ${path}: ${response.status()} (is the page served?)`);
    await page.waitForSelector("html[data-ready=true]", { timeout: 10_000 });
  }

  /// No serious or critical violation of axe-core's rules on the page as it stands.
  async function accessible(what) {
    const results = await new AxeBuilder({ page }).analyze();
    const bad = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
    assert.deepEqual(
      bad.map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join("; ")})`),
      [],
      `${what}: accessibility violations`,
    );
  }

  async function shoot(name) {
    await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
  }

  async function saveDownload(click, name) {
    const [download] = await Promise.all([page.waitForEvent("download"), click()]);
    const path = join(dir, name);
    await download.saveAs(path);
    return path;
  }

  test("the home page", async () => {
    await open("/");
    await shoot("home");
    await accessible("home");
  });

  test("a key made in the browser, exported, is the CLI's key", async () => {
    await open("/key");
    await accessible("key page without a key");
    await page.getByRole("button", { name: "Create a key" }).click();
    did = await page.locator("[data-result] code").first().textContent();
    assert.match(did, /^did:key:z6Mk/);
    await page.locator("[data-key-status]", { hasText: did }).waitFor();
    const file = await saveDownload(() => page.getByRole("button", { name: "Export the key file" }).click(), "identity.json");
    assert.equal(ok(["id", "show", "--key", file]).trim(), did);
    await shoot("key");
    await accessible("key page");

    // A key made by the CLI imports, and replaces it; then the browser's own key comes back.
    const cli = person(dir, "cli-made");
    await page.getByLabel("Or paste its contents").fill(cli.text());
    await page.getByRole("button", { name: "Import the key" }).click();
    await page.locator("[data-result]", { hasText: cli.did }).waitFor();
    await page.getByLabel("Key file", { exact: true }).setInputFiles(file);
    await page.getByRole("button", { name: "Import the key" }).click();
    await page.locator("[data-result]", { hasText: did }).waitFor();
    // Clearing the storage loses it: the page says so before it happens.
    assert.match(await page.locator(".warning").textContent(), /Clearing this site's data/);
  });

  test("a text deposited from the browser, its receipt checked in the page and by the CLI", async () => {
    await open("/deposit");
    await accessible("deposit form");
    await page.getByLabel("Paste the text").fill(story);
    await page.getByLabel("Title").fill("The dough that breathes");
    await page.getByLabel("Register: what kind of text it is").selectOption("narrative");
    await page.getByRole("radio", { name: "public" }).check();
    await page.getByLabel("Licence (an SPDX identifier)").fill("CC-BY-4.0");
    await page.getByLabel("Language (a tag such as en, pt-BR or yo)").fill("en");
    await shoot("deposit-form");
    await page.getByRole("button", { name: "Sign and deposit" }).click();
    await page.locator("[data-result] [data-verdict=ok]").waitFor({ timeout: 15_000 });
    cid = (await page.locator("[data-result] dd a code").first().textContent()).trim();
    assert.match(cid, /^bafkrei/);
    const shown = await api(node.url, `/v1/deposits/${cid}`);
    assert.equal(shown.body.deposit.depositor, did, "signed by the browser's key");
    await shoot("deposit-receipt");
    await accessible("deposit receipt");

    const receipt = await saveDownload(() => page.getByRole("link", { name: `${cid}.receipt.json` }).click(), "receipt.json");
    receiptText = readFileSync(receipt, "utf8");
    const textFile = join(dir, "story.txt");
    (await import("node:fs")).writeFileSync(textFile, story);
    const verified = ok(["verify", receipt, "--commons-key", node.vkey, "--content", textFile]);
    assert.match(verified, /^receipt verifies/);
    assert.equal(field(verified, "content:"), `ok, the file is ${cid}`);
  });

  test("a text from a file, and a file that is not UTF-8 text", async () => {
    await open("/deposit");
    const file = page.getByLabel("Or choose a file (plain text, UTF-8)");
    await file.setInputFiles({ name: "latin1.txt", mimeType: "text/plain", buffer: Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]) });
    await page.getByLabel("Title").fill("Not UTF-8");
    await page.getByRole("button", { name: "Sign and deposit" }).click();
    assert.match(await page.locator("[data-result] .fail").textContent(), /not UTF-8 text/);

    const song = "Row the boat to the far shore,\nthe heron waits at the ford.\n";
    await file.setInputFiles({ name: "song.txt", mimeType: "text/plain", buffer: Buffer.from(song) });
    await page.getByLabel("Title").fill("Heron song");
    await page.getByLabel("Register: what kind of text it is").selectOption("lyric");
    await page.getByRole("checkbox", { name: "oral" }).check();
    await page.getByRole("radio", { name: "commons" }).check();
    await page.getByLabel("Licence (an SPDX identifier)").fill("CC0-1.0");
    await page.getByRole("button", { name: "Sign and deposit" }).click();
    await page.locator("[data-result] [data-verdict=ok]").waitFor({ timeout: 15_000 });
    const deposited = (await page.locator("[data-result] dd a code").first().textContent()).trim();
    const { deposit } = (await api(node.url, `/v1/deposits/${deposited}`)).body;
    assert.equal(deposit.size, Buffer.byteLength(song));
    assert.equal(deposit.consent, "commons");
    assert.deepEqual([deposit.register, deposit.secondaryRegisters ?? deposit.secondary_registers], ["lyric", ["oral"]]);
  });

  test("the node's refusal is shown to the person", async () => {
    await open("/deposit");
    await page.getByLabel("Paste the text").fill("A text with a made-up language tag.\n");
    await page.getByLabel("Title").fill("Refused");
    await page.getByLabel("Language (a tag such as en, pt-BR or yo)").fill("not a language");
    await page.getByRole("button", { name: "Sign and deposit" }).click();
    const said = await page.locator("[data-result] .fail").textContent({ timeout: 10_000 });
    assert.match(said, /The node refused the deposit/);
    assert.match(said, /'not a language' is not a BCP 47 language tag/);
  });

  test("the receipt checker: a good receipt, and tampered ones naming the part", async () => {
    await open("/verify");
    await accessible("receipt checker");
    const check = async (receipt, { content, key } = {}) => {
      await page.getByLabel("Paste the receipt (JSON)").fill(receipt);
      await page.getByLabel("The deposited text's file").setInputFiles(
        content === undefined ? [] : { name: "story.txt", mimeType: "text/plain", buffer: Buffer.from(content) },
      );
      await page.getByLabel("The commons' log key").fill(key ?? node.vkey);
      await page.locator("[data-result]").evaluate((region) => region.replaceChildren());
      await page.getByRole("button", { name: "Check the receipt" }).click();
      const verdict = page.locator("[data-result] [data-verdict]");
      await verdict.waitFor();
      return { verdict: await verdict.getAttribute("data-verdict"), part: await verdict.getAttribute("data-part"), text: await page.locator("[data-result]").textContent() };
    };

    const good = await check(receiptText, { content: story });
    assert.equal(good.verdict, "ok", good.text);
    assert.match(good.text, /content: ok/);
    await shoot("verify-ok");

    const receipt = JSON.parse(receiptText);
    const flip = (b64, at) => {
      const bytes = Buffer.from(b64, "base64");
      bytes[at] ^= 1;
      return bytes.toString("base64");
    };
    // The signature, in the envelope and in the log entry alike (else the two would differ).
    const forged = structuredClone(receipt);
    forged.envelope.signatures[0].sig = flip(forged.envelope.signatures[0].sig, 7);
    const entry = Buffer.from(forged.entry, "base64").toString("latin1").replace(receipt.envelope.signatures[0].sig, forged.envelope.signatures[0].sig);
    forged.entry = Buffer.from(entry, "latin1").toString("base64");
    const signature = await check(JSON.stringify(forged));
    assert.equal(signature.part, "signature", signature.text);
    assert.match(signature.text, /the depositor's signature does not hold/);
    await shoot("verify-fail");

    const lines = receipt.proof.split("\n");
    if (lines[2] !== "") {
      lines[2] = flip(lines[2], 0);
      const inclusion = await check(JSON.stringify({ ...receipt, proof: lines.join("\n") }));
      assert.equal(inclusion.part, "inclusion", inclusion.text);
      assert.match(inclusion.text, /the inclusion proof does not lead to the checkpoint's root/);
    }

    const other = scratch("other");
    try {
      const otherKey = field(ok(["init", "--data-dir", join(other, "data"), "--name", "Elsewhere"]), "log key:");
      const wrongKey = await check(receiptText, { key: otherKey });
      assert.equal(wrongKey.part, "checkpoint", wrongKey.text);
      assert.match(wrongKey.text, /the checkpoint is not signed by this commons' log key/);
    } finally {
      cleanup(other);
    }

    const changed = await check(receiptText, { content: story.replace("dawn", "dusk") });
    assert.equal(changed.part, "content", changed.text);
  });

  test("the deposit's page", async () => {
    await open(`/deposits/${cid}`);
    assert.equal(await page.locator("[data-yours]").isVisible(), true, "the depositor's forms show for the depositor's key");
    await shoot("deposit-page");
    await accessible("deposit page");
  });

  test("a vote in a live round, with a distribution, and its decision", async () => {
    ok(["member", "attest", did, "--days", "30", "--key", steward.file, "--node", node.url]);
    const said = ok(["propose", "--title", "More oral texts", "--summary", "Give oral histories a larger share of the next training run.", "--set-mixture", "narrative=0.5,oral=0.5", "--key", steward.file, "--node", node.url]);
    const id = Number(said.match(/^proposal (\d+)/)[1]);
    await open(`/proposals/${id}`);
    const narrative = page.getByRole("slider", { name: "narrative" });
    await narrative.waitFor();
    // The keyboard moves a weight, and the others follow so the sum stays one.
    await narrative.focus();
    for (let i = 0; i < 100; i++) await page.keyboard.press("ArrowRight");
    assert.equal(await page.locator("[data-mixture-sum]").textContent(), "100.0%");
    assert.equal(await page.locator("output[for=mixture-narrative]").textContent(), "60.0%");
    assert.equal(await page.locator("output[for=mixture-oral]").textContent(), "40.0%");
    // However the weights are pushed, they sum to one; then back to 60/40 for the vote.
    const sum = () => page.locator("[data-mixture-sum]").textContent();
    for (const [register, key] of [["lyric", "End"], ["oral", "PageUp"], ["technical", "ArrowRight"], ["lyric", "Home"], ["sacred", "PageDown"]]) {
      await page.getByRole("slider", { name: register }).press(key);
      assert.equal(await sum(), "100.0%", `after ${key} on ${register}`);
    }
    // All to narrative empties the others; then oral's share comes from narrative alone.
    await page.getByRole("slider", { name: "narrative" }).press("End");
    assert.equal(await page.locator("output[for=mixture-lyric]").textContent(), "0.0%");
    await page.getByRole("slider", { name: "oral" }).fill("400");
    assert.equal(await page.locator("output[for=mixture-narrative]").textContent(), "60.0%");
    assert.equal(await page.locator("output[for=mixture-oral]").textContent(), "40.0%");
    assert.equal(await sum(), "100.0%");
    await page.getByRole("radio", { name: "Yes" }).check();
    await shoot("proposal-vote");
    await accessible("proposal page");
    await page.getByRole("button", { name: "Sign and cast the vote" }).click();
    await page.locator("[data-voted=yes]").waitFor({ timeout: 10_000 });
    const votes = (await api(node.url, `/v1/proposals/${id}?voter=${did}`)).body.votes;
    assert.equal(votes.length, 1);
    assert.deepEqual(votes[0].mixture, { narrative: 0.6, oral: 0.4 });

    const decision = page.locator("[data-decision][data-outcome]");
    await decision.waitFor({ timeout: (WINDOW_SECONDS + 30) * 1000 });
    assert.equal(await decision.getAttribute("data-outcome"), "passed", await decision.textContent());
    await open(`/proposals/${id}`);
    await shoot("proposal-decided");
    await accessible("decided proposal page");
  });

  test("a ranking on a board election", async () => {
    const said = ok(["propose", "--title", "One steward", "--elect-board", "1", "--candidate", steward.did, "--candidate", did, "--key", steward.file, "--node", node.url]);
    const id = Number(said.match(/^proposal (\d+)/)[1]);
    await open(`/proposals/${id}`);
    const candidates = (await api(node.url, `/v1/proposals/${id}`)).body.proposal.actions[0].candidates;
    const [first, second] = [candidates.indexOf(did) + 1, candidates.indexOf(steward.did) + 1];
    await page.getByRole("radio", { name: "Abstain" }).check();
    // Two candidates given the same preference: said before anything is signed.
    await page.getByLabel(`Candidate ${first}`).selectOption("1");
    await page.getByLabel(`Candidate ${second}`).selectOption("1");
    await page.getByRole("button", { name: "Sign and cast the vote" }).click();
    assert.match(await page.locator("[data-result] .fail").textContent(), /share preference 1/);
    await page.getByLabel(`Candidate ${second}`).selectOption("2");
    await shoot("proposal-election");
    await accessible("election page");
    await page.getByRole("button", { name: "Sign and cast the vote" }).click();
    await page.locator("[data-voted=abstain]").waitFor({ timeout: 10_000 });
    const votes = (await api(node.url, `/v1/proposals/${id}?voter=${did}`)).body.votes;
    assert.deepEqual(votes[0].ranking, [did, steward.did]);
  });

  test("withdrawing one's own deposit, its consequences said before the click", async () => {
    await open(`/deposits/${cid}`);
    assert.match(await page.locator("#withdraw-says").textContent(), /cannot be undone/);
    await page.getByRole("radio", { name: "commons" }).check();
    await page.getByRole("button", { name: "Narrow consent" }).click();
    await page.locator("[data-result] .ok", { hasText: "Consent narrowed to commons" }).waitFor();
    await page.getByLabel("Why (optional, public, at most 1000 characters)").fill("I would rather keep it in the family.");
    await page.getByRole("button", { name: "Withdraw this text" }).click();
    await page.locator("[data-result] .ok", { hasText: "Withdrawn" }).waitFor();
    await shoot("withdrawn");
    await eventually("the withdrawal to show", 10, async () => {
      const shown = await api(node.url, `/v1/deposits/${cid}`);
      return shown.body.deposit.status.state === "withdrawn" ? true : undefined;
    });
    assert.equal((await api(node.url, `/v1/deposits/${cid}/content`)).status, 410);
  });

  test("without the script, no form is offered that cannot sign, and the command line is", async () => {
    const script = "**/assets/app.js*";
    await page.route(script, (route) => route.abort());
    try {
      for (const path of ["/key", "/deposit", "/verify"]) {
        const response = await page.goto(path);
        assert.equal(response.status(), 200);
        assert.equal(await page.locator("[data-without-script]").isVisible(), true, path);
        assert.equal(await page.locator("[data-needs-script]").first().isVisible(), false, path);
      }
      assert.match(await page.locator("[data-without-script]").textContent(), /substrate verify/);
    } finally {
      await page.unroute(script);
    }
  });

  test("the other main pages", async () => {
    for (const [path, name] of [["/deposits", "deposits"], ["/proposals", "proposals"], ["/log", "log"], ["/members", "members"]]) {
      await open(path);
      await shoot(name);
      await accessible(name);
    }
  });
});
