// The browser side of the Substrate's web pages: it wires the forms that act (see the crate's
// act.rs) to substrate.js. The key is made and kept in this browser and every act is signed here;
// the node receives only signed envelopes, and says why when it refuses one.

import * as substrate from "./substrate.js";

/// Where the key file is kept: this site's local storage, as the text `substrate id new` writes.
const KEY_STORE = "substrate.identity";

// ---------------------------------------------------------------------------------------------
// Small tools.

/// An element with attributes and children (strings become text, never markup).
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === undefined || value === null) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

/// Replaces what a result region says; `tone` is ok, fail or info, for the style sheet.
function say(region, tone, ...children) {
  region.replaceChildren(el("div", { class: `said ${tone}` }, ...children));
}

/// The node's answer: the JSON body, or a Refusal carrying its `{error, detail}`.
class Refusal extends Error {
  constructor(status, error, detail) {
    super(detail);
    this.status = status;
    this.error = error;
    this.detail = detail;
  }
}

async function request(path, { method = "GET", body } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      body,
      headers: body === undefined ? { accept: "application/json" } : { "content-type": "application/json", accept: "application/json" },
    });
  } catch (e) {
    throw new Refusal(0, "unreachable", `the node could not be reached (${e.message})`);
  }
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  if (!response.ok) {
    throw new Refusal(response.status, json?.error ?? `http_${response.status}`, json?.detail ?? (text || response.statusText));
  }
  return { status: response.status, body: json };
}

/// What went wrong, for the person: the node's own words when it refused `what` (the deposit,
/// the vote, …), else what stopped it on this side.
function failure(region, what, e, verb = "was not sent") {
  if (e instanceof Refusal) {
    say(region, "fail",
      el("p", { class: "problem" }, `The node refused ${what}.`),
      el("p", {}, e.detail),
      el("p", { class: "hint" }, `(${e.status ? `HTTP ${e.status}, ` : ""}${e.error})`));
  } else {
    say(region, "fail", el("p", { class: "problem" }, `${what[0].toUpperCase()}${what.slice(1)} ${verb}:`), el("p", {}, e.message));
  }
}

/// Says there is no key to sign with, and where to make one.
function noKey(region) {
  say(region, "fail", el("p", {}, "There is no key in this browser to sign with: ", el("a", { href: "/key" }, "make or import one"), " first."));
}

/// Offers `text` as a file to save.
function download(name, text, type = "application/json") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = el("a", { href: url, download: name }, name);
  return link;
}

/// A receipt as `substrate deposit` saves it: pretty JSON and a final newline.
function receiptFile(receipt) {
  return JSON.stringify(receipt, null, 2) + "\n";
}

async function fileBytes(input) {
  const file = input?.files?.[0];
  return file ? new Uint8Array(await file.arrayBuffer()) : null;
}

// ---------------------------------------------------------------------------------------------
// The key kept in this browser.

async function storedKey() {
  const text = localStorage.getItem(KEY_STORE);
  if (!text) return null;
  try {
    return await substrate.readKeyFile(text);
  } catch {
    return null;
  }
}

/// Says on every page whose key signs, wherever a page shows it.
function showSigner(key) {
  for (const line of document.querySelectorAll("[data-key-status]")) {
    if (key) {
      line.replaceChildren("This browser holds your key, ", el("code", {}, key.did), "; what you do here is signed with it.");
    } else {
      line.replaceChildren("No key in this browser yet: ", el("a", { href: "/key" }, "make or import one"), " first.");
    }
  }
}

async function keyPage(root) {
  const region = root.querySelector("[data-result]");
  const buttons = {
    create: root.querySelector("[data-key-create]"),
    export: root.querySelector("[data-key-export]"),
    forget: root.querySelector("[data-key-forget]"),
  };
  let key = await storedKey();
  const refresh = () => {
    showSigner(key);
    buttons.export.disabled = key === null;
    buttons.forget.disabled = key === null;
  };
  refresh();
  const replaces = () =>
    key === null ||
    confirm("This replaces the key kept in this browser. Unless you exported it, it is lost for good. Replace it?");
  const keep = (next, said) => {
    localStorage.setItem(KEY_STORE, next.toKeyFile());
    key = next;
    refresh();
    say(region, "ok", el("p", {}, said, " ", el("code", {}, key.did)),
      el("p", {}, "Export the key file now and keep it somewhere safe: clearing this site's data deletes the copy kept here."));
  };

  buttons.create.addEventListener("click", async () => {
    if (!replaces()) return;
    try {
      keep(await substrate.createKey("person"), "A new key, made in this browser:");
    } catch (e) {
      say(region, "fail", el("p", {}, "This browser cannot make an Ed25519 key (", e.message, "). A current Chromium, Firefox or Safari can."));
    }
  });
  buttons.export.addEventListener("click", () => {
    if (!key) return;
    const link = download("identity.json", key.toKeyFile());
    link.click();
    say(region, "info", el("p", {}, "The key file is offered for saving as ", el("code", {}, "identity.json"),
      ". The command line reads it with ", el("code", {}, "--key identity.json"), ". Anyone holding it can sign as you."));
  });
  buttons.forget.addEventListener("click", () => {
    if (!key) return;
    if (!confirm("Forget the key kept in this browser? Unless you exported it, it is lost for good.")) return;
    localStorage.removeItem(KEY_STORE);
    key = null;
    refresh();
    say(region, "info", el("p", {}, "The key is no longer kept in this browser."));
  });
  root.querySelector("[data-key-import]").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const bytes = await fileBytes(form.querySelector("input[type=file]"));
    const text = bytes ? substrate.utf8Decode(bytes) : form.querySelector("textarea").value;
    if (!text.trim()) {
      say(region, "fail", el("p", {}, "Choose a key file or paste its contents first."));
      return;
    }
    try {
      const next = await substrate.readKeyFile(text);
      if (!replaces()) return;
      keep(next, "The key is imported:");
      form.reset();
    } catch (e) {
      say(region, "fail", el("p", {}, el("strong", {}, "That is not a usable key file: "), e.message));
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Receipts: shown, offered as a file, and checked in the page.

/// The verdict of substrate.js's receipt checker, as a list of what held and what did not.
function verdictOf(verdict) {
  const lines = verdict.checks.map((check) =>
    el("li", { class: check.ok ? "ok" : "fail" }, el("strong", {}, `${check.part}: `), check.ok ? `ok, ${check.message}` : check.message));
  if (verdict.ok) {
    return [el("p", { "data-verdict": "ok" }, el("strong", {}, "The receipt verifies.")), el("ul", {}, lines)];
  }
  return [
    el("p", { class: "problem", "data-verdict": "fail", "data-part": verdict.part }, "The receipt does NOT verify: ", `${verdict.message}.`),
    verdict.detail ? el("p", { class: "hint" }, `In detail: ${verdict.detail}`) : null,
    el("ul", {}, lines),
  ];
}

/// What a receipt says, for a person, with the receipt as a file to keep.
function receiptSection(receipt, heading) {
  const rows = [
    ["Kind", receipt.kind],
    ["CID", receipt.cid && el("a", { href: `/deposits/${receipt.cid}` }, el("code", {}, receipt.cid))],
    ["Handle", receipt.handle && el("code", {}, receipt.handle)],
    ["Log index", String(receipt.log_index)],
    ["Logged at", el("time", { datetime: receipt.integrated_time }, receipt.integrated_time)],
    ["Signed by", el("code", {}, receipt.envelope?.signatures?.[0]?.keyid ?? "?")],
  ].filter(([, value]) => value);
  // Named as `substrate deposit` names a deposit's receipt; any other entry's by its kind too.
  const name = receipt.kind === "deposit" && receipt.cid
    ? `${receipt.cid}.receipt.json`
    : `${receipt.cid ? `${receipt.cid}.` : ""}${receipt.kind}-${receipt.log_index}.receipt.json`;
  return el("section", { class: "receipt", "aria-label": heading },
    el("h2", {}, heading),
    el("dl", { class: "facts" }, rows.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)])),
    el("p", {}, "Keep the receipt: ", download(name, receiptFile(receipt)), ". With it anyone can check, without trusting this node, that this entry is in the log (",
      el("a", { href: "/verify" }, "check a receipt"), ", or ", el("code", {}, "substrate verify"), ")."));
}

/// Checks a receipt the node just gave, against the log key the node states: a first check that
/// catches a broken node; the receipt page checks against a key the person brings.
async function checkedHere(receipt, content) {
  try {
    const { body: commons } = await request("/v1/commons");
    const verdict = await substrate.verifyReceipt(receipt, commons.log_key, content);
    return el("div", { class: "check" }, el("h3", {}, "Checked in this page"), verdictOf(verdict),
      el("p", { class: "hint" }, "Against the log key this node states, ", el("code", {}, commons.log_key), "."));
  } catch (e) {
    return el("p", {}, `The receipt could not be checked here: ${e.message}`);
  }
}

async function verifyPage(root) {
  const region = root.querySelector("[data-result]");
  root.querySelector("#verify-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const receiptBytes = await fileBytes(form.querySelector("#verify-receipt-file"));
    const receipt = receiptBytes ? substrate.utf8Decode(receiptBytes) : form.querySelector("#verify-receipt").value;
    if (!receipt.trim()) {
      say(region, "fail", el("p", {}, "Paste a receipt or choose its file first."));
      return;
    }
    const content = await fileBytes(form.querySelector("#verify-content-file"));
    const logKey = form.querySelector("#verify-key").value;
    try {
      const verdict = await substrate.verifyReceipt(receipt, logKey, content);
      say(region, verdict.ok ? "ok" : "fail", verdictOf(verdict));
    } catch (e) {
      say(region, "fail", el("p", {}, `The receipt could not be checked: ${e.message}`));
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Depositing.

async function depositPage(root) {
  const region = root.querySelector("[data-result]");
  const form = root.querySelector("#deposit-form");
  showSigner(await storedKey());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = await storedKey();
    if (!key) {
      say(region, "fail", el("p", {}, "There is no key in this browser to sign with: ", el("a", { href: "/key" }, "make or import one"), " first."));
      return;
    }
    const data = new FormData(form);
    const file = await fileBytes(form.querySelector("#deposit-file"));
    const content = file ?? substrate.utf8(String(data.get("text") ?? ""));
    if (content.length === 0) {
      say(region, "fail", el("p", {}, "There is no text to deposit: paste it or choose its file."));
      return;
    }
    let envelope;
    try {
      const deposit = await substrate.depositEvent(content, {
        register: String(data.get("register") ?? ""),
        also: data.getAll("also").map(String).filter((r) => r !== data.get("register")),
        consent: String(data.get("consent") ?? ""),
        title: String(data.get("title") ?? "").trim(),
        language: String(data.get("language") ?? "").trim(),
        license: String(data.get("license") ?? "").trim(),
      });
      envelope = await substrate.signEvent(key, deposit);
    } catch (e) {
      say(region, "fail", el("p", {}, el("strong", {}, "Not signed: "),
        e instanceof TypeError ? "the file is not UTF-8 text; only plain UTF-8 text can be deposited." : e.message));
      return;
    }
    say(region, "info", el("p", {}, "Signed in this browser; sending it to the node…"));
    try {
      const { status, body: receipt } = await request("/v1/deposits", { method: "POST", body: substrate.depositRequest(envelope, content) });
      const heading = status === 201 ? "Deposited" : "Already deposited: here is its receipt again";
      say(region, "ok", receiptSection(receipt, heading), await checkedHere(receipt, content));
    } catch (e) {
      failure(region, "the deposit", e);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Voting, with a distribution over registers on a proposal that sets the mixture.

/// A distribution editor: one slider per register, in thousandths that always sum to 1000.
/// Moving one weight rescales the others in proportion to what they were, so the ballot is a
/// distribution at every moment. Returns a function that reads the ballot.
function mixtureEditor(container, sum, registers, initial) {
  const n = registers.length;
  let weights = registers.map((r) => Math.max(0, Math.round((Number(initial[r]) || 0) * 1000)));
  const total = weights.reduce((s, w) => s + w, 0);
  if (total === 0) weights = split(1000, n);
  else weights[weights.indexOf(Math.max(...weights))] += 1000 - total;

  const rows = el("tbody");
  container.append(el("table", {}, el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Register"),
    el("th", { scope: "col" }, "Weight"), el("th", { scope: "col" }, "Share"))), rows));
  const inputs = registers.map((register, i) => {
    const id = `mixture-${register}`;
    const input = el("input", { type: "range", id, min: 0, max: 1000, step: 1, value: weights[i] });
    const shown = el("output", { for: id }, "");
    rows.append(el("tr", {}, el("th", { scope: "row" }, el("label", { for: id }, register)), el("td", {}, input),
      el("td", { class: "number" }, shown)));
    input.addEventListener("input", () => {
      weights = rebalance(weights, i, Number(input.value));
      render();
    });
    return { input, shown };
  });
  function render() {
    inputs.forEach(({ input, shown }, i) => {
      input.value = String(weights[i]);
      const percent = `${(weights[i] / 10).toFixed(1)}%`;
      input.setAttribute("aria-valuetext", percent);
      shown.value = percent;
    });
    sum.value = `${(weights.reduce((s, w) => s + w, 0) / 10).toFixed(1)}%`;
  }
  render();
  return () => Object.fromEntries(registers.map((r, i) => [r, weights[i] / 1000]).filter(([, w]) => w > 0));
}

/// `amount` split into `parts` whole shares as equal as they come.
function split(amount, parts) {
  return Array.from({ length: parts }, (_, i) => Math.floor(amount / parts) + (i < amount % parts ? 1 : 0));
}

/// Sets weight `i` to `value` and gives the rest to the others in proportion to their weights
/// (equally when they all stood at zero), in whole thousandths that sum to 1000.
function rebalance(weights, i, value) {
  if (weights.length === 1) return [1000];
  const rest = 1000 - value;
  const others = weights.map((w, j) => (j === i ? 0 : w));
  const total = others.reduce((s, w) => s + w, 0);
  let shares;
  if (total === 0) {
    const equal = split(rest, weights.length - 1);
    shares = others.map((_, j) => (j === i ? 0 : equal[j < i ? j : j - 1]));
  } else {
    const exact = others.map((w) => (w * rest) / total);
    shares = exact.map(Math.floor);
    let left = rest - shares.reduce((s, w) => s + w, 0);
    const order = exact.map((x, j) => [x - Math.floor(x), j]).filter(([, j]) => j !== i).sort((a, b) => b[0] - a[0]);
    for (const [, j] of order) {
      if (left === 0) break;
      shares[j] += 1;
      left -= 1;
    }
  }
  shares[i] = value;
  return shares;
}

/// A ranking editor: a preference (1, 2, …, or none) chosen for each candidate. Returns a
/// function that reads the ranking, most preferred first, and throws when two candidates share
/// a preference.
function rankingEditor(container, candidates) {
  const rows = el("tbody");
  container.append(el("table", {}, el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Candidate"),
    el("th", { scope: "col" }, "Your preference"))), rows));
  const selects = candidates.map((did, i) => {
    const id = `rank-${i + 1}`;
    const select = el("select", { id },
      el("option", { value: "" }, "not ranked"),
      candidates.map((_, n) => el("option", { value: n + 1 }, String(n + 1))));
    rows.append(el("tr", {},
      el("th", { scope: "row" }, el("label", { for: id }, `Candidate ${i + 1}: `, el("code", {}, did))),
      el("td", {}, select)));
    return select;
  });
  return () => {
    const ranked = selects.map((s, i) => [Number(s.value), candidates[i]]).filter(([n]) => n > 0).sort((a, b) => a[0] - b[0]);
    const twice = ranked.find(([n], i) => i > 0 && ranked[i - 1][0] === n);
    if (twice) throw new Error(`two candidates share preference ${twice[0]}; give each a different number`);
    return ranked.length > 0 ? ranked.map(([, did]) => did) : undefined;
  };
}

function outcomeText(status) {
  const outcome = status?.outcome;
  if (!outcome) return "decided";
  return outcome.reason ? `${outcome.outcome}: ${outcome.reason}` : outcome.outcome;
}

/// Watches an open proposal and says the decision once the sequencer has logged it.
function watchDecision(id, line) {
  const poll = async () => {
    try {
      const { body } = await request(`/v1/proposals/${id}?votes=false`);
      const status = body.proposal.status;
      if (status.state === "closed") {
        line.replaceChildren(el("strong", {}, "Voting has closed. The decision: "), outcomeText(status),
          status.decision !== undefined ? ` (log entry ${status.decision}).` : ".");
        line.dataset.outcome = status.outcome?.outcome ?? "";
        return;
      }
      const closesIn = Math.max(0, body.proposal.closesAt - Date.now());
      line.textContent = `Voting is open; it closes at ${new Date(body.proposal.closesAt).toISOString()}, and the decision will show here.`;
      setTimeout(poll, Math.min(Math.max(closesIn, 1000), 30_000));
    } catch {
      setTimeout(poll, 5000);
    }
  };
  poll();
}

async function votePage(root) {
  const id = Number(root.dataset.proposal);
  const region = root.querySelector("[data-result]");
  const form = root.querySelector("#vote-form");
  showSigner(await storedKey());
  let ballot = null;
  let ranking = null;
  try {
    const { body: view } = await request(`/v1/proposals/${id}?votes=false`);
    const election = view.proposal.actions.find((a) => a.action === "elect-board");
    if (election) {
      const fieldset = root.querySelector("[data-ranking]");
      ranking = rankingEditor(fieldset.querySelector("[data-ranking-candidates]"), election.candidates);
      fieldset.hidden = false;
    }
    const setsMixture = view.proposal.actions.find((a) => a.action === "set-mixture");
    if (setsMixture) {
      const { body: commons } = await request("/v1/commons");
      const fieldset = root.querySelector("[data-mixture]");
      ballot = mixtureEditor(fieldset.querySelector("[data-mixture-weights]"), fieldset.querySelector("[data-mixture-sum]"),
        commons.registers, setsMixture.ballot ?? {});
      fieldset.hidden = false;
    }
  } catch (e) {
    failure(region, "the proposal's details", e, "could not be read");
  }
  watchDecision(id, root.querySelector("[data-decision]"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = await storedKey();
    if (!key) {
      say(region, "fail", el("p", {}, "There is no key in this browser to sign with: ", el("a", { href: "/key" }, "make or import one"), " first."));
      return;
    }
    const choice = new FormData(form).get("choice");
    if (!choice) {
      say(region, "fail", el("p", {}, "Choose yes, no or abstain first."));
      return;
    }
    const withMixture = ballot !== null && form.querySelector("#vote-with-mixture").checked;
    try {
      const vote = await substrate.voteEvent(id, String(choice), {
        mixture: withMixture ? ballot() : undefined,
        ranking: ranking ? ranking() : undefined,
      });
      const { body: receipt } = await request("/v1/events", { method: "POST", body: substrate.eventRequest(await substrate.signEvent(key, vote)) });
      say(region, "ok", el("p", { "data-voted": choice }, el("strong", {}, `Your vote (${choice}) is logged`),
        ` at index ${receipt.log_index}, ${receipt.integrated_time}. A new vote replaces it until voting closes.`),
        el("p", {}, "Its receipt: ", download(`vote-${id}-entry-${receipt.log_index}.receipt.json`, receiptFile(receipt)), "."));
    } catch (e) {
      failure(region, "the vote", e);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Withdrawing and narrowing one's own deposit.

async function ownDeposit(root) {
  const { cid, depositor } = root.dataset;
  const region = root.querySelector("[data-result]");
  const key = await storedKey();
  if (!key || key.did !== depositor) return;
  root.querySelector("[data-not-yours]").hidden = true;
  root.querySelector("[data-yours]").hidden = false;

  const send = async (event, doing, done) => {
    try {
      const { body: receipt } = await request("/v1/events", { method: "POST", body: substrate.eventRequest(await substrate.signEvent(key, event)) });
      say(region, "ok", el("p", {}, el("strong", {}, done), ` Logged at index ${receipt.log_index}, ${receipt.integrated_time}.`),
        el("p", {}, el("a", { href: location.pathname }, "See this deposit's page as it stands now"), "."),
        receiptSection(receipt, `The ${receipt.kind}'s receipt`));
      return true;
    } catch (e) {
      failure(region, doing, e);
      return false;
    }
  };
  root.querySelector("#withdraw-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!confirm("Withdraw this text? It is deleted here and from the mirrors; a tombstone stays in the log for good. This cannot be undone.")) return;
    const reason = e.currentTarget.querySelector("#withdraw-reason").value.trim();
    if (await send(await substrate.withdrawalEvent(cid, { reason }), "the withdrawal", "Withdrawn: the text is deleted; a tombstone keeps its hash and receipt.")) {
      root.querySelector("[data-yours]").hidden = true;
    }
  });
  root.querySelector("#narrow-form")?.addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    const consent = String(new FormData(form).get("consent") ?? "");
    if (await send(await substrate.consentChangeEvent(cid, consent), "the narrowing", `Consent narrowed to ${consent}.`)) {
      form.hidden = true;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Live tallies: an open proposal's figures, read again from the API while its window is open.

/// How often an open proposal's tallies are read again.
const TALLY_EVERY_MS = 4000;

/// A weight as wording.rs writes it: whole numbers as they are, fractions to three places.
function weightText(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(3);
}

function percentText(share) {
  return `${(share * 100).toFixed(1)}%`;
}

/// An outcome as wording.rs ends a sentence with it.
function outcomeWords(outcome) {
  switch (outcome?.outcome) {
    case "passed": return "it passes";
    case "rejected": return `it is rejected: ${outcome.reason}`;
    case "vetoed": return `it is vetoed by the ${outcome.by} chamber`;
    default: return String(outcome?.outcome ?? "undecided");
  }
}

/// A time as wording.rs shows it ("2026-11-22 05:00 UTC"), with the exact instant for machines.
function whenElement(ms) {
  const exact = new Date(ms).toISOString();
  return el("time", { datetime: exact }, `${exact.slice(0, 10)} ${exact.slice(11, 16)} UTC`);
}

/// Keeps the tally table, the sentence on what would happen now and, after the close, the
/// decision up to date. Only what changed is rewritten, so the live region speaks only then and
/// the table keeps its place.
function liveTally(root) {
  const id = root.dataset.proposal;
  const put = (node, text) => {
    if (node && node.textContent !== text) node.textContent = text;
  };
  const show = ({ proposal, tally }) => {
    for (const chamber of ["contributor", "technical"]) {
      const t = tally[chamber];
      const decided = t.yes + t.no;
      const figures = {
        yes: weightText(t.yes), no: weightText(t.no), abstain: weightText(t.abstain), eligible: weightText(t.eligible),
        "of-decided": percentText(decided > 0 ? t.yes / decided : 0),
        "of-eligible": percentText(t.eligible > 0 ? t.yes / t.eligible : 0),
      };
      for (const [figure, text] of Object.entries(figures)) put(root.querySelector(`[data-tally="${chamber} ${figure}"]`), text);
    }
    const basis = root.querySelector("[data-tally-basis]");
    if (tally.final) {
      put(basis, "As the decision recorded them at the close.");
    } else {
      const when = whenElement(tally.asOf);
      const said = `As of ${when.textContent}, counted by the same rules the decision will use.`;
      if (basis.textContent !== said) basis.replaceChildren("As of ", when, ", counted by the same rules the decision will use.");
    }
    put(root.querySelector("[data-tally-outcome]"), `${tally.final ? "Decided: " : "If the window closed now, "}${outcomeWords(tally.outcome)}.`);
    const decision = proposal.status?.decision;
    const line = root.querySelector("[data-tally-decision]");
    if (tally.final && decision !== undefined && line.childElementCount === 0) {
      line.replaceChildren("The decision is ", el("a", { href: `/log?start=${decision}` }, `entry ${decision}`), " of the log.");
    }
  };
  const poll = async () => {
    // A page nobody looks at asks nothing; it catches up when shown again.
    if (document.visibilityState !== "hidden") {
      try {
        const { body } = await request(`/v1/proposals/${id}?votes=false`);
        show(body);
        // Decided: nothing changes any more.
        if (body.tally.final) return;
      } catch {
        // The node did not answer this time; the figures shown stay until it does.
      }
    }
    setTimeout(poll, TALLY_EVERY_MS);
  };
  setTimeout(poll, TALLY_EVERY_MS);
}

// ---------------------------------------------------------------------------------------------
// Disputes.

async function disputeForm(root) {
  const { cid } = root.dataset;
  const region = root.querySelector("[data-result]");
  const form = root.querySelector("#dispute-form");
  const registerChoice = root.querySelector("[data-dispute-register]");
  showSigner(await storedKey());
  form.addEventListener("change", () => {
    registerChoice.hidden = new FormData(form).get("ground") !== "wrong-register";
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = await storedKey();
    if (!key) return noKey(region);
    const data = new FormData(form);
    const ground = String(data.get("ground") ?? "");
    const detail = String(data.get("detail") ?? "").trim();
    if (!ground) return say(region, "fail", el("p", {}, "Choose what is wrong with the text first."));
    if (!detail) return say(region, "fail", el("p", {}, "Say what you found: the board reads it before it rules."));
    try {
      const register = ground === "wrong-register" ? String(data.get("register") ?? "") : undefined;
      const dispute = await substrate.disputeEvent(cid, ground, detail, { register });
      const { body: receipt } = await request("/v1/events", { method: "POST", body: substrate.eventRequest(await substrate.signEvent(key, dispute)) });
      const id = receipt.log_index;
      say(region, "ok",
        el("p", { "data-disputed": id }, el("strong", {}, "The dispute is open: "), el("a", { href: `/disputes/${id}` }, `dispute ${id}`),
          `, logged at ${receipt.integrated_time}. Until the board rules, the text stays out of training snapshots.`),
        el("p", {}, "Its receipt: ", download(`dispute-${id}.receipt.json`, receiptFile(receipt)), "."));
      form.hidden = true;
    } catch (e) {
      failure(region, "the dispute", e);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Reading a members' text with a request signed here.

async function memberRead(root) {
  const { cid } = root.dataset;
  const region = root.querySelector("[data-result]");
  const shown = root.querySelector("[data-member-text]");
  const key = await storedKey();
  root.querySelector("[data-no-key]").hidden = key !== null;
  root.querySelector("[data-with-key]").hidden = key === null;
  root.querySelector("[data-member-read]").addEventListener("click", async () => {
    const signer = await storedKey();
    if (!signer) return noKey(region);
    shown.hidden = true;
    say(region, "info", el("p", {}, "Signing the request in this browser…"));
    const url = new URL(`/v1/deposits/${cid}/content`, location.href);
    try {
      const headers = await substrate.signRequest(signer, "GET", url.href);
      let response;
      try {
        response = await fetch(url, { headers: { ...headers, accept: "text/plain" }, cache: "no-store" });
      } catch (e) {
        throw new Refusal(0, "unreachable", `the node could not be reached (${e.message})`);
      }
      const bytes = new Uint8Array(await response.arrayBuffer());
      if (!response.ok) {
        let said = null;
        try {
          said = JSON.parse(substrate.utf8Decode(bytes));
        } catch {
          said = null;
        }
        throw new Refusal(response.status, said?.error ?? `http_${response.status}`, said?.detail ?? response.statusText);
      }
      shown.textContent = substrate.utf8Decode(bytes);
      shown.hidden = false;
      say(region, "ok", el("p", { "data-read-as": signer.did }, el("strong", {}, "The text, read as a member"), " with a request signed by ",
        el("code", {}, signer.did), ". It is for members: keep it among them."));
    } catch (e) {
      failure(region, "the signed read", e, "could not be made");
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Proposals.

async function proposePage(root) {
  const region = root.querySelector("[data-result]");
  const form = root.querySelector("#propose-form");
  const keySelect = form.querySelector("#propose-key");
  showSigner(await storedKey());
  const mixture = root.querySelector("fieldset[data-mixture]");
  const registers = mixture.dataset.registers.split(",").filter((r) => r !== "");
  const ballot = mixtureEditor(mixture.querySelector("[data-mixture-weights]"), mixture.querySelector("[data-mixture-sum]"), registers, {});
  // The class each parameter needs comes with the page, from the node's own rules.
  const parameterClass = (key) => [...keySelect.options].find((o) => o.value === key)?.dataset.class;
  const chosen = () => String(new FormData(form).get("action") ?? "set-mixture");
  const action = () => {
    switch (chosen()) {
      case "set-mixture":
        return { action: "set-mixture", ballot: ballot() };
      case "set-parameter": {
        const text = form.querySelector("#propose-value").value.trim();
        try {
          return { action: "set-parameter", key: keySelect.value, value: JSON.parse(text) };
        } catch {
          throw new Error(`the value ${JSON.stringify(text)} is not JSON: write a number, a "text" in quotes, a [list], or null`);
        }
      }
      default:
        return { action: "remove-deposit", cid: form.querySelector("#propose-cid").value.trim(), reason: form.querySelector("#propose-reason").value.trim() };
    }
  };
  const refresh = () => {
    for (const set of form.querySelectorAll("fieldset[data-action]")) set.hidden = set.dataset.action !== chosen();
    root.querySelector("[data-proposal-class]").textContent =
      substrate.lowestClass([{ action: chosen(), key: keySelect.value }], parameterClass);
  };
  form.addEventListener("change", refresh);
  refresh();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = await storedKey();
    if (!key) return noKey(region);
    const title = form.querySelector("#propose-title").value.trim();
    if (!title) return say(region, "fail", el("p", {}, "Give the proposal a title first."));
    try {
      const actions = [action()];
      const proposal = await substrate.proposalEvent({
        title, summary: form.querySelector("#propose-summary").value.trim(), class: substrate.lowestClass(actions, parameterClass), actions,
      });
      const { body: receipt } = await request("/v1/events", { method: "POST", body: substrate.eventRequest(await substrate.signEvent(key, proposal)) });
      const id = receipt.log_index;
      say(region, "ok",
        el("p", { "data-proposed": id }, el("strong", {}, "Proposal put: "), el("a", { href: `/proposals/${id}` }, `proposal ${id}, ${title}`),
          `, logged at ${receipt.integrated_time}. Voting is open from now; share the link with the members.`),
        el("p", {}, "Its receipt: ", download(`proposal-${id}.receipt.json`, receiptFile(receipt)), "."));
    } catch (e) {
      failure(region, "the proposal", e, "was not made");
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Asking the commons: the node's own chat route, streamed, with the texts the answer drew on.

/// One text an answer drew on: its title linked to its page, who deposited it, its register, and
/// the passage the model was given.
function citationItem(citation) {
  const span = citation.span ? `bytes ${citation.span.start}..${citation.span.end}` : null;
  return el("li", { "data-citation": citation.cid },
    el("a", { href: `/deposits/${citation.cid}` }, citation.title || citation.handle || citation.cid),
    ` (${[citation.register, citation.license].filter(Boolean).join(", ")})`,
    citation.referenced ? el("strong", {}, `, cited as [${citation.index}]`) : `, [${citation.index}], not named in the answer`,
    el("br"), "by ", el("code", {}, citation.depositor), span ? `, ${span}` : null,
    citation.quote ? el("blockquote", {}, citation.quote.trim()) : null);
}

/// The node's refusal of a chat, in the OpenAI error shape (or the API's own, before it).
async function chatRefusal(response) {
  let said = null;
  try {
    said = JSON.parse(await response.text());
  } catch {
    said = null;
  }
  const detail = said?.error?.message ?? said?.detail ?? response.statusText;
  return new Refusal(response.status, said?.error?.code ?? said?.error ?? `http_${response.status}`, detail);
}

async function chatPage(root) {
  const region = root.querySelector("[data-result]");
  const form = root.querySelector("#chat-form");
  const models = form.querySelector("#chat-model");
  const answer = root.querySelector("[data-chat-answer]");
  const text = root.querySelector("[data-chat-text]");
  const sources = root.querySelector("[data-chat-sources]");
  const list = root.querySelector("[data-chat-citations]");
  // The models this node serves, but the one that only embeds.
  let served = [];
  try {
    const response = await fetch("/v1/models", { headers: { accept: "application/json" }, cache: "no-store" });
    if (response.ok) served = ((await response.json()).data ?? []).map((m) => m.id).filter((id) => id !== root.dataset.embedding);
  } catch {
    served = [];
  }
  if (served.length === 0) {
    form.hidden = true;
    root.querySelector("[data-no-models]").hidden = false;
    return;
  }
  models.replaceChildren(...served.map((id) => el("option", { value: id }, id)));
  const key = await storedKey();
  if (key) {
    root.querySelector("[data-chat-signer]").replaceChildren("Asked as ", el("code", {}, key.did),
      ": each question is signed with the key in this browser, so a verified member is answered, from the commons tier too, and pays from their daily floor and then their credits.");
  }
  const button = form.querySelector("button[type=submit]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = form.querySelector("#chat-question").value.trim();
    if (!question) return say(region, "fail", el("p", {}, "Write a question first."));
    const body = substrate.chatRequest(models.value, question, { retrieval: form.querySelector("#chat-retrieval").checked });
    const url = new URL("/v1/chat/completions", location.href);
    button.disabled = true;
    text.replaceChildren();
    list.replaceChildren();
    sources.hidden = true;
    answer.hidden = false;
    text.setAttribute("aria-busy", "true");
    say(region, "info", el("p", {}, "Asking the node; the answer appears below as it is written…"));
    try {
      // Signed anew for every question: the node accepts a chat's signature once.
      const signer = await storedKey();
      const signed = signer ? await substrate.signRequest(signer, "POST", url.href, { body }) : {};
      let response;
      try {
        response = await fetch(url, {
          method: "POST", body, cache: "no-store",
          headers: { "content-type": "application/json", accept: "text/event-stream", ...signed },
        });
      } catch (e) {
        throw new Refusal(0, "unreachable", `the node could not be reached (${e.message})`);
      }
      if (!response.ok) throw await chatRefusal(response);
      let citations = [];
      let finish = null;
      for await (const data of substrate.serverSentEvents(response.body)) {
        if (data === "[DONE]") break;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Refusal(response.status, chunk.error.code ?? "model_failed", chunk.error.message);
        const choice = chunk.choices?.[0];
        if (choice?.delta?.content) text.append(choice.delta.content);
        if (choice?.finish_reason) finish = choice.finish_reason;
        if (Array.isArray(chunk.citations)) citations = chunk.citations;
      }
      text.setAttribute("aria-busy", "false");
      list.replaceChildren(...citations.map(citationItem));
      sources.hidden = citations.length === 0;
      const ended = finish === "length" ? " It stopped at the length the node allows." : "";
      const drawn = citations.length === 0 ? "It drew on no text of the commons." : `It drew on ${citations.length} text(s) of the commons, listed under it.`;
      say(region, "ok", el("p", { "data-answered": finish ?? "" }, el("strong", {}, "Answered. "), drawn, ended,
        signer ? ` The question was signed by ${signer.did}.` : ""));
    } catch (e) {
      text.setAttribute("aria-busy", "false");
      failure(region, "the question", e, "was not answered");
    } finally {
      button.disabled = false;
    }
  });
}

// ---------------------------------------------------------------------------------------------

const WIRING = {
  key: keyPage, deposit: depositPage, verify: verifyPage, vote: votePage, "own-deposit": ownDeposit,
  dispute: disputeForm, "member-read": memberRead, propose: proposePage, chat: chatPage,
};
/// What only reads: it needs no key, and no Ed25519.
const LIVE = { tally: liveTally };

async function wire() {
  for (const node of document.querySelectorAll("[data-live]")) LIVE[node.dataset.live]?.(node);
  const roots = document.querySelectorAll("[data-act]");
  // Without Ed25519 nothing here can be signed or checked: the forms stay hidden and the page
  // keeps saying how to do it with the command line.
  if (roots.length > 0 && !(await substrate.supportsEd25519())) {
    document.documentElement.dataset.ready = "true";
    return;
  }
  for (const node of document.querySelectorAll("[data-needs-script]")) node.hidden = false;
  for (const node of document.querySelectorAll("[data-without-script]")) node.hidden = true;
  for (const root of roots) {
    const wireUp = WIRING[root.dataset.act];
    if (wireUp) await wireUp(root);
  }
  // Scripts ran and the forms are live: the tests wait for this.
  document.documentElement.dataset.ready = "true";
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire);
else wire();
