// The pages that act, in a real Chromium: a key made in the browser, a text deposited and its
// receipt checked in the page, the receipt tampered with and the failing part named, a vote in a
// live round and its decision, a withdrawal, a dispute opened and ruled on, a tally that changes
// while its page is open, a members' text read with a signed request (and refused to an
// outsider), a proposal made, a question asked of the commons (its answer streamed, its sources
// listed); every page at 200% zoom; axe-core's rules on every main page; screenshots.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createRequire } from "node:module";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
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

const song = "Row the boat to the far shore,\nthe heron waits at the ford.\n";
const story = "The dough that breathes.\n\nMy grandmother folded it at dawn, twice, then covered it with the blue cloth and waited for the kitchen to warm.\n";

describe("the pages in Chromium", () => {
  let dir, node, steward, context, page, did, cid, heron, receiptText;

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

    await file.setInputFiles({ name: "song.txt", mimeType: "text/plain", buffer: Buffer.from(song) });
    await page.getByLabel("Title").fill("Heron song");
    await page.getByLabel("Register: what kind of text it is").selectOption("lyric");
    await page.getByRole("checkbox", { name: "oral" }).check();
    await page.getByRole("radio", { name: "commons" }).check();
    await page.getByLabel("Licence (an SPDX identifier)").fill("CC0-1.0");
    await page.getByRole("button", { name: "Sign and deposit" }).click();
    await page.locator("[data-result] [data-verdict=ok]").waitFor({ timeout: 15_000 });
    const deposited = (await page.locator("[data-result] dd a code").first().textContent()).trim();
    heron = deposited;
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

  /// Imports a key file's text on the key page and waits until the page holds it.
  async function holdKey(text, did) {
    await open("/key");
    await page.getByLabel("Or paste its contents").fill(text);
    await page.getByRole("button", { name: "Import the key" }).click();
    await page.locator("[data-result]", { hasText: did }).waitFor();
  }

  test("a dispute opened from a deposit's page, ruled on, and shown on the disputes' pages", async () => {
    const file = join(dir, "misfiled.txt");
    writeFileSync(file, "Row, row, row the boat: a song filed as a story.\n");
    const misfiled = field(ok(["deposit", file, "--register", "narrative", "--consent", "public", "--title", "A song filed as a story",
      "--lang", "en", "--license", "CC0-1.0", "--receipt", join(dir, "misfiled.json"), "--key", steward.file, "--node", node.url]), "cid:");
    await open(`/deposits/${misfiled}`);
    assert.equal(await page.getByLabel("The register it should carry").isVisible(), false, "asked only for a wrong register");
    await page.getByRole("radio", { name: "Wrong register" }).check();
    await page.getByLabel("The register it should carry").selectOption("lyric");
    await page.getByLabel("What you found (public, at most 1000 characters)").fill("It is sung, not told: listen to its refrain.");
    await shoot("dispute-form");
    await accessible("dispute form");
    await page.getByRole("button", { name: "Sign and open the dispute" }).click();
    const opened = page.locator("[data-disputed]");
    await opened.waitFor({ timeout: 10_000 });
    const id = await opened.getAttribute("data-disputed");
    await accessible("dispute opened");
    const dispute = (await api(node.url, `/v1/disputes/${id}`)).body;
    assert.equal(dispute.openedBy ?? dispute.opened_by, did, "opened by the browser's key");
    assert.equal(dispute.register, "lyric");

    await page.getByRole("link", { name: `dispute ${id}`, exact: true }).click();
    await page.waitForSelector("html[data-ready=true]");
    assert.match(await page.locator("main").textContent(), /It is sung, not told: listen to its refrain\./);
    assert.match(await page.locator("main").textContent(), /has not ruled yet/);
    await shoot("dispute-open");
    await accessible("open dispute page");

    // The steward rules from the command line; the dispute's page says what and why.
    ok(["dispute", "rule", id, "--ruling", "relabel:lyric", "--reason", "It has a refrain: a song.", "--key", steward.file, "--node", node.url]);
    await open(`/disputes/${id}`);
    const ruled = await page.locator("main").textContent();
    assert.match(ruled, /The board ruled: give it the register lyric\./);
    assert.match(ruled, /It has a refrain: a song\./);
    await shoot("dispute-ruled");
    await accessible("ruled dispute page");
    await open("/disputes");
    assert.match(await page.locator(`tr:has(a[href="/disputes/${id}"])`).textContent(), /the board ruled at entry \d+: give it the register lyric/);
    await accessible("disputes");
  });

  test("a tally that changes while its page is open, and then its decision", async () => {
    const said = ok(["propose", "--title", "Fewer sacred texts", "--set", "mixture.cap.sacred=0.1", "--key", steward.file, "--node", node.url]);
    const id = Number(said.match(/^proposal (\d+)/)[1]);
    await open(`/proposals/${id}`);
    const yes = page.locator('[data-tally="contributor yes"]');
    const sentence = page.locator("[data-tally-outcome]");
    assert.equal(await yes.textContent(), "0");
    assert.match(await sentence.textContent(), /^If the window closed now, it is rejected/);
    assert.equal(await page.locator("p.outcome[aria-live=polite]").count(), 1, "the sentence is spoken when it changes");
    const where = await page.locator("p.outcome").boundingBox();

    // Another member votes from the command line while the page is open.
    ok(["vote", String(id), "yes", "--key", steward.file, "--node", node.url]);
    await page.locator('[data-tally="contributor yes"]', { hasText: /^1$/ }).waitFor({ timeout: 15_000 });
    await page.locator("[data-tally-outcome]", { hasText: "If the window closed now, it passes." }).waitFor({ timeout: 5_000 });
    assert.equal(await page.locator('[data-tally="contributor of-decided"]').textContent(), "100.0%");
    const moved = await page.locator("p.outcome").boundingBox();
    assert.equal(moved.y, where.y, "the figures change in place");
    await shoot("proposal-live");
    await accessible("proposal with a live tally");

    // Once the window closes the page shows the decision, without a reload.
    await page.locator("[data-tally-outcome]", { hasText: "Decided: it passes." }).waitFor({ timeout: (WINDOW_SECONDS + 30) * 1000 });
    await page.locator("[data-tally-decision] a").waitFor();
    assert.match(await page.locator("[data-tally-basis]").textContent(), /As the decision recorded them/);
  });

  test("a commons text read as a member, and refused to a key that is not a member's", async () => {
    await open(`/deposits/${heron}`);
    assert.equal(await page.locator("[data-member-text]").isVisible(), false, "not shown before it is asked for");
    await page.getByRole("button", { name: "Read it as a member" }).click();
    await page.locator("[data-read-as]").waitFor({ timeout: 10_000 });
    assert.equal(await page.locator("[data-member-text]").textContent(), song);
    await shoot("member-read");
    await accessible("a commons text read as a member");

    const outsider = person(dir, "outsider");
    await holdKey(outsider.text(), outsider.did);
    await open(`/deposits/${heron}`);
    await page.getByRole("button", { name: "Read it as a member" }).click();
    const refusal = await page.locator("[data-result] .fail").textContent({ timeout: 10_000 });
    assert.match(refusal, /The node refused the signed read/);
    assert.match(refusal, /is not a verified member/);
    assert.match(refusal, /HTTP 403, not_member/);
    assert.equal(await page.locator("[data-member-text]").isVisible(), false);
    await shoot("member-read-refused");
    await accessible("a signed read refused");

    // Back to the browser's own key.
    await holdKey(readFileSync(join(dir, "identity.json"), "utf8"), did);
  });

  test("a proposal made in the browser, and listed", async () => {
    await open("/proposals");
    await page.getByRole("link", { name: "Make a proposal" }).click();
    await page.waitForSelector("html[data-ready=true]");
    await accessible("propose form");
    await page.getByLabel("Title").fill("A larger daily floor");
    await page.getByLabel("Summary: why (optional, at most 4000 characters)").fill("Twenty credits a day is not enough to read with.");
    await page.getByRole("radio", { name: "Set a parameter" }).check();
    await page.getByLabel("Parameter (its key)").selectOption("credits.floor");
    assert.equal(await page.locator("[data-proposal-class]").textContent(), "resource", "the class the key needs");
    await page.getByLabel(/Its new value, as JSON/).fill("25");
    await shoot("propose");
    await page.getByRole("button", { name: "Sign and propose" }).click();
    const made = page.locator("[data-proposed]");
    await made.waitFor({ timeout: 10_000 });
    const id = await made.getAttribute("data-proposed");
    await accessible("proposal made");
    const { proposal } = (await api(node.url, `/v1/proposals/${id}`)).body;
    assert.equal(proposal.class, "resource");
    assert.equal(proposal.proposer, did);
    assert.deepEqual(proposal.actions, [{ action: "set-parameter", key: "credits.floor", value: 25 }]);

    await page.getByRole("link", { name: `proposal ${id}, A larger daily floor` }).click();
    await page.waitForSelector("html[data-ready=true]");
    assert.match(await page.locator("h1").textContent(), /A larger daily floor/);
    await open("/proposals");
    assert.match(await page.locator(`a[href="/proposals/${id}"]`).textContent(), /A larger daily floor/);

    // The mixture, with the vote page's editor: its weights always sum to one; the class is ordinary.
    await open("/propose");
    await page.getByLabel("Title").fill("All narrative");
    assert.equal(await page.locator("[data-proposal-class]").textContent(), "ordinary");
    await page.getByRole("slider", { name: "narrative" }).press("End");
    assert.equal(await page.locator("[data-mixture-sum]").textContent(), "100.0%");
    await page.getByRole("button", { name: "Sign and propose" }).click();
    const mixture = page.locator("[data-proposed]");
    await mixture.waitFor({ timeout: 10_000 });
    const view = (await api(node.url, `/v1/proposals/${await mixture.getAttribute("data-proposed")}`)).body.proposal;
    assert.deepEqual([view.class, view.actions[0]], ["ordinary", { action: "set-mixture", ballot: { narrative: 1 } }]);
  });

  test("without the script, no form is offered that cannot sign, and the command line is", async () => {
    const script = "**/assets/app.js*";
    await page.route(script, (route) => route.abort());
    try {
      for (const path of ["/key", "/deposit", "/verify", "/propose"]) {
        const response = await page.goto(path);
        assert.equal(response.status(), 200);
        assert.equal(await page.locator("[data-without-script]").isVisible(), true, path);
        assert.equal(await page.locator("[data-needs-script]").first().isVisible(), false, path);
      }
      assert.match(await page.locator("[data-without-script]").textContent(), /substrate propose/);
    } finally {
      await page.unroute(script);
    }
  });

  test("asking the commons: a node without models says how to serve them; an answer streams with its sources", async () => {
    await open("/chat");
    const none = page.locator("[data-no-models]");
    await none.waitFor();
    assert.match(await none.textContent(), /substrate serve --serve-models/);
    assert.equal(await page.locator("#chat-form").isVisible(), false);
    await accessible("chat page on a node without models");

    // The node under test serves no model (the tiny models are written by the Rust tests' own
    // helpers, which the binary does not offer), so a stub of this node's own two routes answers
    // the page here: its models, and a streamed answer whose last chunk carries the citations.
    // Each signed question is also passed on to the real node, which checks the signature and
    // then, having no model, answers 404 model_not_found.
    const asked = [];
    await page.route("**/v1/models", (route) => route.fulfill({ json: { object: "list", data: [{ id: "tiny-chat", object: "model", owned_by: "commons" }] } }));
    await page.route("**/v1/chat/completions", async (route) => {
      const request = route.request();
      const real = await route.fetch();
      asked.push({ body: request.postData(), headers: await request.allHeaders(), real: real.status(), said: await real.text() });
      const chunk = (delta, finish = null, extra = {}) =>
        `data: ${JSON.stringify({ id: "chatcmpl-stub", object: "chat.completion.chunk", choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }], ...extra })}\n\n`;
      const citations = [{
        index: 1, cid, handle: "tag:substrate.local,2026:t/1", title: "The dough that breathes", depositor: did, register: "narrative",
        language: "en", license: "CC-BY-4.0", consent: "public", span: { start: 0, end: 24 }, quote: "The dough that breathes.\n", referenced: true,
      }];
      await route.fulfill({
        status: 200,
        headers: { "content-type": "text/event-stream" },
        body: chunk({ role: "assistant", content: "" }) + chunk({ content: "It breathes" }) + chunk({ content: " at dawn [1]." }) +
          chunk({}, "stop", { citations }) + "data: [DONE]\n\n",
      });
    });
    try {
      await open("/chat");
      assert.match(await page.locator("[data-chat-signer]").textContent(), new RegExp(did));
      // This node keeps no index, so drawing on the texts is not chosen for the asker.
      const retrieval = page.getByLabel("Answer from the commons' texts, and list them");
      assert.equal(await retrieval.isChecked(), false);
      await retrieval.check();
      for (const question of ["What does the dough do?", "And at night?"]) {
        await page.getByLabel("Your question").fill(question);
        await page.getByRole("button", { name: "Ask" }).click();
        await page.locator("[data-answered]").waitFor();
      }
      assert.equal(await page.locator("[data-chat-text]").textContent(), "It breathes at dawn [1].");
      const item = page.locator(`[data-citation="${cid}"]`);
      assert.equal(await item.locator("a").getAttribute("href"), `/deposits/${cid}`);
      assert.match(await item.textContent(), /The dough that breathes \(narrative, CC-BY-4\.0\), cited as \[1\]/);
      assert.match(await item.textContent(), new RegExp(`by ${did}, bytes 0\\.\\.24`));
      assert.equal(await item.locator("blockquote").textContent(), "The dough that breathes.");
      await shoot("chat");
      await accessible("chat page with an answer");

      // Streamed, from the commons, each signed anew by the browser's key over its own body.
      assert.equal(asked.length, 2);
      for (const { body, headers, real, said } of asked) {
        const sent = JSON.parse(body);
        assert.deepEqual([sent.model, sent.stream, sent.retrieval, sent.messages.length], ["tiny-chat", true, true, 1]);
        assert.equal(headers["content-digest"], `sha-256=:${createHash("sha256").update(body).digest("base64")}:`);
        assert.match(headers["signature-input"], new RegExp(`"content-digest"\\);created=\\d+;keyid="${did}"`));
        assert.equal(real, 404, `the real node on the page's signed question: ${said}`);
        assert.match(said, /model_not_found/);
      }
      assert.notEqual(asked[0].headers.signature, asked[1].headers.signature);
    } finally {
      await page.unroute("**/v1/models");
      await page.unroute("**/v1/chat/completions");
    }
  });

  test("at 200% zoom nothing overflows sideways, and Tab reaches every control", async () => {
    // A 1280-pixel-wide window at 200% zoom lays a page out in 640 CSS pixels.
    const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true, args: CHROMIUM_ARGS });
    try {
      const zoomed = await (await browser.newContext({ baseURL: node.url, viewport: { width: 640, height: 800 }, deviceScaleFactor: 2 })).newPage();
      const proposal = (await api(node.url, "/v1/proposals")).body.proposals[0];
      const paths = [
        "/", "/deposits", `/deposits/${cid}`, "/deposit", "/verify", "/key", "/proposals", "/propose", "/members",
        `/members/${did}`, "/disputes", "/log", "/models", "/mesh", "/jobs", "/chat",
      ];
      if (proposal) paths.push(`/proposals/${proposal.id ?? proposal.proposal?.id}`);
      for (const path of paths) {
        const response = await zoomed.goto(path);
        assert.equal(response.status(), 200, path);
        await zoomed.waitForSelector("html[data-ready=true]", { timeout: 10_000 });
        // Everything but what a container of its own scrolls (the wide tables) fits the width.
        const overflowing = await zoomed.evaluate(() => {
          const width = document.documentElement.clientWidth;
          const name = (el) => el.tagName.toLowerCase() + (el.id ? `#${el.id}` : "") + (el.className && typeof el.className === "string" ? `.${el.className.split(" ").join(".")}` : "");
          const out = [];
          if (document.documentElement.scrollWidth > width) out.push(`the page is ${document.documentElement.scrollWidth}px wide in ${width}px`);
          for (const el of document.body.querySelectorAll("*")) {
            if (el.parentElement?.closest(".scroll") || el.closest(".skip")) continue;
            const box = el.getBoundingClientRect();
            if (box.width === 0 && box.height === 0) continue;
            if (box.right > width + 1 || box.left < -1) out.push(`${name(el)} spans ${Math.round(box.left)}..${Math.round(box.right)}`);
          }
          return out;
        });
        assert.deepEqual(overflowing, [], `${path} at 200%`);

        // Tab from the top of the freshly loaded page until focus comes round again: every visible control is
        // reached (a group of radio buttons once, as arrows move within it), and each in view.
        const seen = [];
        let outside = 0;
        for (let press = 0; press < 400 && outside < 3; press++) {
          await zoomed.keyboard.press("Tab");
          const stop = await zoomed.evaluate(() => {
            const el = document.activeElement;
            if (el === null || el === document.body) return null;
            if (el.dataset.tabbed) return "again";
            el.dataset.tabbed = "yes";
            const box = el.getBoundingClientRect();
            const scrolled = el.parentElement?.closest(".scroll");
            return { what: el.outerHTML.slice(0, 80), inView: scrolled !== null || (box.left >= -1 && box.right <= document.documentElement.clientWidth + 1) };
          });
          if (stop === "again") break;
          // Focus left the page after its last control (to the browser's own): the round is done.
          if (stop === null && seen.length > 0) outside++;
          if (stop !== null) seen.push(stop);
        }
        assert.deepEqual(seen.filter((s) => !s.inView).map((s) => s.what), [], `${path}: focus out of view at 200%`);
        const unreached = await zoomed.evaluate(() => {
          const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
          const controls = [...document.querySelectorAll("input, select, textarea, button, a[href]")]
            .filter((el) => visible(el) && !el.disabled && el.tabIndex >= 0);
          const groups = new Set(controls.filter((el) => el.type === "radio" && el.dataset.tabbed).map((el) => el.name));
          return controls
            .filter((el) => !el.dataset.tabbed && !(el.type === "radio" && groups.has(el.name)))
            .map((el) => el.outerHTML.slice(0, 80));
        });
        assert.deepEqual(unreached, [], `${path}: not reached by Tab at 200%`);
        if (path === "/deposit") await zoomed.screenshot({ path: join(screenshots, "deposit-200-percent.png"), fullPage: true });
      }
    } finally {
      await browser.close();
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
