//! The pages and forms that act: they need the browser to sign, so their markup is paired with assets/app.js.
//!
//! The key is made and kept in the browser and every act is signed there; the node receives
//! signed envelopes only. Each form carries a `data-act` attribute naming what app.js wires to
//! it; until app.js has wired it the form stays hidden and the page says how to do the same with
//! the command line.
//! Every control has a label; results are announced in a live region.

use maud::{Markup, html};

/// What each consent tier allows, in one sentence.
fn tier_sentence(tier: &str) -> &'static str {
    match tier {
        "public" => "Anyone may read it, any node may keep a copy, and it may be used for training.",
        "commons" => {
            "Only verified members may read it, only member nodes keep copies, and it may be used for training."
        }
        "training-only" => {
            "Nobody is shown it and no answer quotes it; it is used only for training, inside jobs the members approved."
        }
        "local" => "It never leaves the node it was deposited to; only jobs running there may train on it.",
        _ => "A tier this commons declares.",
    }
}

/// Said where a form needs the browser to sign, until app.js has wired the form (and hides this):
/// without JavaScript, or in a browser without Ed25519 in WebCrypto, it stays, and the form stays
/// hidden, so nothing that cannot be signed is offered.
fn needs_script(what: &str, command: &str) -> Markup {
    html! {
        p.notice data-without-script {
            (what) " needs JavaScript and a browser with Ed25519 keys (a current Chromium, Firefox or Safari): "
            "keys are made, acts signed and receipts checked here, in this browser, and your key never leaves it. "
            "Without them, use the command line: " code { (command) }
        }
    }
}

/// Whose key signs, filled in by app.js from the key kept in this browser.
fn signer_line() -> Markup {
    html! {
        p.signer data-key-status {
            "No key in this browser yet: " a href="/key" { "make or import one" } " first."
        }
    }
}

/// The key page's main region.
pub fn key_page() -> Markup {
    html! {
        div data-act="key" {
            p {
                "Your key signs your deposits, votes, withdrawals, disputes and proposals, and your requests to read members' texts. It is made here, in this browser, and "
                "never sent anywhere: the node only ever sees what it signed. The key file is the same one "
                code { "substrate id new" } " writes, so a key made here works with the command line, and one made "
                "there can be imported here."
            }
            (needs_script("Making a key", "substrate id new"))
            section aria-labelledby="key-now" {
                h2 #key-now { "The key in this browser" }
                p data-key-status { "No key in this browser yet." }
                p.warning role="note" {
                    strong { "Keep a copy. " }
                    "The key is kept in this browser's storage for this site. Clearing this site's data (cookies "
                    "and site data, or a private window closing) deletes it, and nothing can bring it back unless "
                    "you exported the key file. Anyone holding the file can sign as you, so keep it private."
                }
                div.actions hidden data-needs-script {
                    button type="button" data-key-create { "Create a key" }
                    " "
                    button type="button" data-key-export disabled { "Export the key file" }
                    " "
                    button type="button" data-key-forget disabled { "Forget this key" }
                }
            }
            section aria-labelledby="key-import" {
                h2 #key-import { "Import a key file" }
                form hidden data-needs-script data-key-import {
                    p {
                        "A key file from " code { "substrate id new" } " (by default "
                        code { "~/.config/substrate/identity.json" } ") or exported from another browser. "
                        "It replaces the key kept here."
                    }
                    p {
                        label for="key-file" { "Key file" }
                        input #key-file type="file" accept=".json,application/json";
                    }
                    p {
                        label for="key-text" { "Or paste its contents" }
                        textarea #key-text rows="5" cols="60" spellcheck="false" autocomplete="off" {}
                    }
                    button type="submit" { "Import the key" }
                }
            }
            div.result role="status" aria-live="polite" data-result {}
        }
    }
}

/// The deposit form's main region; `registers` and `tiers` are the names the commons accepts, `origin` the log's origin line.
pub fn deposit_page(registers: &[String], tiers: &[String], origin: &str) -> Markup {
    html! {
        div data-act="deposit" data-origin=(origin) {
            p {
                "Your text is signed in this browser with your key, then sent to this node, which logs it and "
                "answers with a receipt: proof, checkable by anyone without trusting this node, that you deposited "
                "exactly this text under these terms."
            }
            (needs_script("Depositing", "substrate deposit FILE --register … --consent … --title … --lang … --license …"))
            (signer_line())
            form #deposit-form hidden data-needs-script novalidate {
                fieldset {
                    legend { "The text" }
                    p {
                        label for="deposit-text" { "Paste the text" }
                        textarea #deposit-text name="text" rows="12" cols="70" {}
                    }
                    p {
                        label for="deposit-file" { "Or choose a file (plain text, UTF-8)" }
                        input #deposit-file name="file" type="file" accept=".txt,text/plain";
                    }
                }
                p {
                    label for="deposit-title" { "Title" }
                    input #deposit-title name="title" type="text" required maxlength="300" size="50";
                }
                p {
                    label for="deposit-register" { "Register: what kind of text it is" }
                    select #deposit-register name="register" required {
                        @for register in registers {
                            option value=(register) { (register) }
                        }
                    }
                }
                fieldset {
                    legend { "Also in these registers (optional)" }
                    ul.choices {
                        @for register in registers {
                            li {
                                input type="checkbox" name="also" value=(register) id={ "also-" (register) };
                                label for={ "also-" (register) } { (register) }
                            }
                        }
                    }
                }
                fieldset {
                    legend { "Consent: what the commons may do with it" }
                    p.hint { "You can narrow consent later, never widen it." }
                    ul.choices {
                        @for (i, tier) in tiers.iter().enumerate() {
                            li {
                                input type="radio" name="consent" value=(tier) id={ "consent-" (tier) }
                                    checked[i == 0] aria-describedby={ "consent-" (tier) "-says" };
                                label for={ "consent-" (tier) } { strong { (tier) } }
                                " "
                                span id={ "consent-" (tier) "-says" } { (tier_sentence(tier)) }
                            }
                        }
                    }
                }
                p {
                    label for="deposit-license" { "Licence (an SPDX identifier)" }
                    input #deposit-license name="license" type="text" required value="CC-BY-4.0" list="licenses"
                        size="20" spellcheck="false";
                    datalist #licenses {
                        option value="CC-BY-4.0" {}
                        option value="CC-BY-SA-4.0" {}
                        option value="CC0-1.0" {}
                        option value="CC-BY-NC-4.0" {}
                        option value="MIT" {}
                    }
                }
                p {
                    label for="deposit-language" { "Language (a tag such as en, pt-BR or yo)" }
                    input #deposit-language name="language" type="text" required value="en" size="10" spellcheck="false";
                }
                button type="submit" { "Sign and deposit" }
            }
            div.result role="status" aria-live="polite" data-result {}
        }
    }
}

/// The receipt checker's main region; `log_key` is the commons' log public key as the API's /v1/commons reports it, `origin` the log origin.
pub fn verify_page(log_key: &str, origin: &str) -> Markup {
    html! {
        div data-act="verify" data-origin=(origin) {
            p {
                "A receipt proves that a signed text is in this commons' log. This page checks the depositor's "
                "signature, the inclusion proof that leads from the log entry to a checkpoint's root, and the log "
                "key's signature on that checkpoint, without asking the node about the receipt."
            }
            p #verify-trust {
                "What that shows depends on whom you trust. This page and its script come from this node, so a "
                "check made here is only as honest as the node: a node that lies could serve a script that "
                "passes anything. A careful person checks with software that does not come from the node ("
                code { "substrate verify RECEIPT --commons-key KEY" } ", or another verifier of signed notes and "
                "RFC 6962 proofs), against the log key the commons published elsewhere."
            }
            (needs_script("Checking a receipt in the page", "substrate verify RECEIPT --commons-key KEY --content FILE"))
            form #verify-form hidden data-needs-script novalidate {
                fieldset {
                    legend { "The receipt" }
                    p {
                        label for="verify-receipt" { "Paste the receipt (JSON)" }
                        textarea #verify-receipt name="receipt" rows="10" cols="70" spellcheck="false" {}
                    }
                    p {
                        label for="verify-receipt-file" { "Or choose the receipt file" }
                        input #verify-receipt-file type="file" accept=".json,application/json";
                    }
                }
                fieldset {
                    legend { "The text (optional)" }
                    p.hint { "Given the text, the checker also confirms it is exactly the text that was deposited." }
                    p {
                        label for="verify-content-file" { "The deposited text's file" }
                        input #verify-content-file type="file";
                    }
                }
                p {
                    label for="verify-key" { "The commons' log key" }
                    input #verify-key name="log_key" type="text" value=(log_key) size="70" spellcheck="false"
                        aria-describedby="verify-key-says";
                }
                p.hint #verify-key-says {
                    "This node gave this key. A node that lies could give a false one with a false receipt, so "
                    "compare it with the key the commons publishes elsewhere (the one " code { "substrate init" }
                    " printed when the commons was founded), and use that one with the command line."
                }
                button type="submit" { "Check the receipt" }
            }
            div.result role="status" aria-live="polite" data-result {}
        }
    }
}

/// The chat page's main region: a question asked of the node's model, answered from the commons'
/// texts as it streams, with the texts it drew on. `embedding` is the model that only embeds (not
/// offered for chat); `search` whether the node keeps the index answers draw on.
pub fn chat_page(embedding: Option<&str>, search: bool) -> Markup {
    html! {
        div data-act="chat" data-embedding=[embedding] {
            p {
                "Ask the commons a question. The node's model answers from the texts it finds for it, and the "
                "texts it was given are listed under the answer, each with the passage it read, linked to its "
                "page. Whether the answer names them is the model's doing: a small model often does not."
            }
            @if !search {
                p.notice {
                    "This node keeps no search index, so its answers draw on no text of the commons (its operator "
                    "turns one on with " code { "substrate serve --search" } ")."
                }
            }
            (needs_script("Asking here", "substrate chat \"QUESTION\""))
            div.notice data-no-models hidden {
                p { strong { "This node serves no models, " } "so it cannot answer questions here." }
                p {
                    "A node started with " code { "substrate serve --serve-models --search" } " serves the default "
                    "models and answers from the commons' texts; ask one from the command line with "
                    code { "substrate chat \"QUESTION\" --node URL" } "."
                }
            }
            form #chat-form hidden data-needs-script novalidate {
                p.signer data-chat-signer {
                    "No key in this browser: the models answer the commons' members, who pay from their daily "
                    "commons floor and then their credits, so a question without a key is answered only by a node "
                    "open to everyone. A member whose key is in this browser ("
                    a href="/key" { "Your key" } ") is answered, from the commons tier too."
                }
                p {
                    label for="chat-question" { "Your question" }
                    textarea #chat-question name="question" rows="3" cols="70" {}
                }
                p {
                    label for="chat-model" { "The model" }
                    " "
                    select #chat-model name="model" {}
                }
                p {
                    // Without an index the node refuses retrieval, so it is not asked for unless chosen.
                    input #chat-retrieval type="checkbox" name="retrieval" checked[search];
                    " "
                    label for="chat-retrieval" { "Answer from the commons' texts, and list them" }
                }
                button type="submit" { "Ask" }
            }
            div.result role="status" aria-live="polite" data-result {}
            // Outside the live region: a screen reader hears that the answer is done, not each word.
            section aria-labelledby="chat-answer-heading" data-chat-answer hidden {
                h2 #chat-answer-heading { "The answer" }
                div.text data-chat-text aria-busy="true" {}
                div data-chat-sources hidden {
                    h3 { "Drawn from" }
                    ol.citations data-chat-citations {}
                }
            }
        }
    }
}

/// The vote form on a proposal's page, shown while voting is open.
pub fn vote_form(proposal: u64, open: bool) -> Markup {
    if !open {
        return html! {};
    }
    html! {
        section data-act="vote" data-proposal=(proposal) aria-labelledby="vote-heading" {
            h2 #vote-heading { "Your vote" }
            (needs_script("Voting here", &format!("substrate vote {proposal} yes|no|abstain")))
            (signer_line())
            form #vote-form hidden data-needs-script novalidate {
                fieldset {
                    legend { "Your choice" }
                    ul.choices {
                        @for (value, label, says) in [
                            ("yes", "Yes", "The proposal should pass."),
                            ("no", "No", "The proposal should not pass."),
                            ("abstain", "Abstain", "Counted as taking part, for neither side."),
                        ] {
                            li {
                                input type="radio" name="choice" value=(value) id={ "vote-" (value) }
                                    aria-describedby={ "vote-" (value) "-says" };
                                label for={ "vote-" (value) } { (label) }
                                " "
                                span id={ "vote-" (value) "-says" } { (says) }
                            }
                        }
                    }
                }
                // Filled by app.js when the proposal sets the training mixture.
                fieldset data-mixture hidden {
                    legend { "Your distribution over registers" }
                    p.hint {
                        "Every ballot with a distribution counts toward the mixture, whatever its choice. Moving one "
                        "weight moves the others in proportion, so the weights always sum to one."
                    }
                    p {
                        input #vote-with-mixture type="checkbox" checked;
                        label for="vote-with-mixture" { "Add my distribution to this vote" }
                    }
                    div data-mixture-weights {}
                    p { "Sum: " output data-mixture-sum { "100.0%" } }
                }
                // Filled by app.js when the proposal elects the board.
                fieldset data-ranking hidden {
                    legend { "Your ranking of the candidates" }
                    p.hint {
                        "Give 1 to the candidate you most prefer, 2 to the next, and so on; leave out anyone you would "
                        "not rank. The seats are filled from every ranking by single transferable vote."
                    }
                    div data-ranking-candidates {}
                }
                p.hint { "A second vote replaces your first until voting closes." }
                button type="submit" { "Sign and cast the vote" }
            }
            div.result role="status" aria-live="polite" data-result {}
            p data-decision aria-live="polite" {}
        }
    }
}

/// The withdraw/narrow form on a deposit's page; the browser's key decides whether it is the depositor's.
pub fn withdraw_form(cid: &str, depositor: &str, consent: &str) -> Markup {
    let narrower: Vec<&str> = {
        const TIERS: [&str; 4] = ["public", "commons", "training-only", "local"];
        let from = TIERS.iter().position(|t| *t == consent).map_or(TIERS.len(), |i| i + 1);
        TIERS.get(from..).unwrap_or_default().to_vec()
    };
    html! {
        section data-act="own-deposit" data-cid=(cid) data-depositor=(depositor) data-consent=(consent)
            aria-labelledby="own-heading" {
            h2 #own-heading { "If this text is yours" }
            p data-not-yours {
                "Only the depositor can withdraw this text or narrow its consent, signing with their key: "
                "here, once their key is in this browser (" a href="/key" { "Your key" } "), or with "
                code { "substrate withdraw " (cid) } "."
            }
            div data-yours hidden {
                form #withdraw-form novalidate {
                    h3 { "Withdraw it" }
                    p #withdraw-says {
                        "Withdrawing deletes the text from this node, and every mirror deletes its copy when the "
                        "withdrawal reaches it. What stays, for good, is a tombstone: its hash, its receipt and the "
                        "withdrawal itself, in the public log. Adapters already trained on it are marked as trained "
                        "on a withdrawn text. It cannot be undone; depositing the text again makes a new deposit."
                    }
                    p {
                        label for="withdraw-reason" { "Why (optional, public, at most 1000 characters)" }
                        textarea #withdraw-reason name="reason" rows="3" cols="60" maxlength="1000" {}
                    }
                    button type="submit" aria-describedby="withdraw-says" { "Withdraw this text" }
                }
                @if !narrower.is_empty() {
                    form #narrow-form novalidate {
                        h3 { "Narrow its consent" }
                        p #narrow-says {
                            "Its consent is now " strong { (consent) } ". Consent only narrows: once narrowed it cannot "
                            "be widened again, except by depositing the text anew."
                        }
                        fieldset {
                            legend { "The new, narrower tier" }
                            ul.choices {
                                @for (i, tier) in narrower.iter().enumerate() {
                                    li {
                                        input type="radio" name="consent" value=(tier) id={ "narrow-" (tier) }
                                            checked[i == 0] aria-describedby={ "narrow-" (tier) "-says" };
                                        label for={ "narrow-" (tier) } { strong { (tier) } }
                                        " "
                                        span id={ "narrow-" (tier) "-says" } { (tier_sentence(tier)) }
                                    }
                                }
                            }
                        }
                        button type="submit" aria-describedby="narrow-says" { "Narrow consent" }
                    }
                }
            }
            div.result role="status" aria-live="polite" data-result {}
        }
    }
}

/// One sentence per ground a member may dispute a deposit on.
const GROUNDS: [(&str, &str, &str); 4] = [
    (
        "wrong-register",
        "Wrong register",
        "It is filed as the wrong kind of text; say which register it belongs in.",
    ),
    (
        "doubtful-consent",
        "Doubtful consent",
        "The depositor may not have had the right to give it, or to give it under this consent.",
    ),
    ("spam", "Spam", "It is not a text for the commons: advertising, filler, or machine-made noise."),
    ("harm", "Harm", "It does harm to someone: it exposes a person, or incites against people."),
];

/// The form on an active deposit's page with which a member opens a dispute; `registers` are the
/// commons' registers, `register` the deposit's own.
pub fn dispute_form(cid: &str, register: &str, registers: &[String]) -> Markup {
    html! {
        section data-act="dispute" data-cid=(cid) aria-labelledby="dispute-heading" {
            h2 #dispute-heading { "Dispute this deposit" }
            p {
                "A verified member who thinks something is wrong with this text opens a dispute. Until the board "
                "rules, the text stays out of training snapshots; the dispute and what you write are public."
            }
            (needs_script("Opening a dispute here", &format!("substrate dispute open {cid} --ground … --detail …")))
            (signer_line())
            form #dispute-form hidden data-needs-script novalidate {
                fieldset {
                    legend { "What is wrong" }
                    ul.choices {
                        @for (value, label, says) in GROUNDS {
                            li {
                                input type="radio" name="ground" value=(value) id={ "ground-" (value) }
                                    aria-describedby={ "ground-" (value) "-says" };
                                label for={ "ground-" (value) } { (label) }
                                " "
                                span id={ "ground-" (value) "-says" } { (says) }
                            }
                        }
                    }
                }
                p data-dispute-register hidden {
                    label for="dispute-register" { "The register it should carry" }
                    select #dispute-register name="register" {
                        @for other in registers.iter().filter(|r| *r != register) {
                            option value=(other) { (other) }
                        }
                    }
                }
                p {
                    label for="dispute-detail" { "What you found (public, at most 1000 characters)" }
                    textarea #dispute-detail name="detail" rows="4" cols="60" maxlength="1000" {}
                }
                button type="submit" { "Sign and open the dispute" }
            }
            div.result role="status" aria-live="polite" data-result {}
        }
    }
}

/// On a `commons` deposit's page: a member whose key is in this browser reads the text with a
/// request signed here (RFC 9421), which the node answers only for a verified member.
pub fn member_read(cid: &str, language: &str) -> Markup {
    html! {
        div data-act="member-read" data-cid=(cid) {
            p.hint data-no-key hidden {
                "A member whose key is in this browser reads it here (" a href="/key" { "Your key" } ")."
            }
            p hidden data-with-key {
                button type="button" data-member-read { "Read it as a member" }
            }
            div.result role="status" aria-live="polite" data-result {}
            // Outside the live region: a screen reader announces the outcome, not the whole text.
            div.text lang=(language) data-member-text hidden {}
        }
    }
}

/// One parameter a proposal may set: its key, the lowest class that may change it, its value now.
#[derive(Clone, Debug)]
pub struct ParameterRow {
    pub key: String,
    pub class: &'static str,
    pub now: String,
}

/// The parameters as rows: every key of `Parameters::class_of`, with a register's caps and
/// floors and each threshold spelt out.
pub fn parameter_rows(parameters: &substrate_core::governance::params::Parameters) -> Vec<ParameterRow> {
    use substrate_core::governance::params::{KEYS, Parameters};
    let mut keys: Vec<String> = KEYS.iter().filter(|k| !k.contains('<')).map(|k| (*k).to_owned()).collect();
    for register in &parameters.registers {
        keys.push(format!("mixture.cap.{register}"));
        keys.push(format!("mixture.floor.{register}"));
    }
    for class in ["ordinary", "resource", "constitutional"] {
        for chamber in ["contributor", "technical"] {
            for field in ["majority", "quorum"] {
                keys.push(format!("threshold.{class}.{chamber}.{field}"));
            }
        }
    }
    keys.into_iter()
        .filter_map(|key| {
            let class = Parameters::class_of(&key).ok()?.name();
            let now = current(parameters, &key);
            Some(ParameterRow { key, class, now })
        })
        .collect()
}

/// A parameter's value now, as JSON.
fn current(p: &substrate_core::governance::params::Parameters, key: &str) -> String {
    use substrate_core::governance::tally::ProposalClass;
    let value = match key {
        "registers" => serde_json::json!(p.registers),
        "window.ordinary" => p.windows.ordinary.into(),
        "window.resource" => p.windows.resource.into(),
        "window.constitutional" => p.windows.constitutional.into(),
        "attestation.days" => p.attestation_days.into(),
        "vouching.required" => p.vouches_required.into(),
        "board.quorum" => p.board_quorum.into(),
        "deposit.max-bytes" => p.deposit_max_bytes.into(),
        "credits.deposit" => p.credits.deposit.into(),
        "credits.compute" => p.credits.compute.into(),
        "credits.review" => p.credits.review.into(),
        "credits.dispute" => p.credits.dispute.into(),
        "credits.floor" => p.credits.floor.into(),
        "credits.stability-share" => p.credits.stability_share_ppm.into(),
        "credits.half-life-days" => p.credits.half_life_days.into(),
        "credits.inference" => p.credits.inference.into(),
        "jobs.check-ppm" => p.check_ppm.into(),
        _ => {
            let mut parts = key.split('.');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some("mixture"), Some(kind), Some(register), None) => {
                    let map = if kind == "cap" { &p.mixture_caps } else { &p.mixture_floors };
                    map.iter()
                        .find(|(r, _)| r.as_str() == register)
                        .map_or(serde_json::Value::Null, |(_, v)| (*v).into())
                }
                (Some("threshold"), Some(class), Some(chamber), Some(field)) => {
                    let class = match class {
                        "ordinary" => ProposalClass::Ordinary,
                        "resource" => ProposalClass::Resource,
                        _ => ProposalClass::Constitutional,
                    };
                    let (contributor, technical) = p.thresholds(class);
                    let threshold = if chamber == "contributor" { contributor } else { technical };
                    (if field == "majority" { threshold.majority } else { threshold.quorum }).into()
                }
                _ => serde_json::Value::Null,
            }
        }
    };
    value.to_string()
}

/// The proposal form's main region: a title, a summary and one action; `registers` are the
/// commons' registers, `parameters` what a proposal may set.
pub fn propose_page(registers: &[String], parameters: &[ParameterRow]) -> Markup {
    html! {
        div data-act="propose" {
            p {
                "A verified member puts a proposal to the two chambers. Its class is the lowest its action allows: "
                "ordinary for the mixture and for removing a deposit, and for a parameter the class the table below "
                "names. The class sets the voting window and the agreement needed. See the "
                a href="/proposals" { "proposals" } " already put."
            }
            (needs_script("Making a proposal here", "substrate propose --title … --set-mixture … | --set KEY=VALUE | --remove CID --reason …"))
            (signer_line())
            form #propose-form hidden data-needs-script novalidate {
                p {
                    label for="propose-title" { "Title" }
                    input #propose-title name="title" type="text" required maxlength="200" size="60";
                }
                p {
                    label for="propose-summary" { "Summary: why (optional, at most 4000 characters)" }
                    textarea #propose-summary name="summary" rows="4" cols="60" maxlength="4000" {}
                }
                fieldset {
                    legend { "What it does" }
                    ul.choices {
                        @for (value, label, says) in [
                            ("set-mixture", "Set the training mixture", "Every vote's distribution over registers counts; yours comes first."),
                            ("set-parameter", "Set a parameter", "Change one of the commons' governable settings."),
                            ("remove-deposit", "Remove a deposit", "Delete a text from the commons, leaving a tombstone."),
                        ] {
                            li {
                                input type="radio" name="action" value=(value) id={ "action-" (value) }
                                    checked[value == "set-mixture"] aria-describedby={ "action-" (value) "-says" };
                                label for={ "action-" (value) } { (label) }
                                " "
                                span id={ "action-" (value) "-says" } { (says) }
                            }
                        }
                    }
                }
                fieldset data-action="set-mixture" data-mixture data-registers=(registers.join(",")) {
                    legend { "Your distribution over registers" }
                    p.hint {
                        "Moving one weight moves the others in proportion, so the weights always sum to one."
                    }
                    div data-mixture-weights {}
                    p { "Sum: " output data-mixture-sum { "100.0%" } }
                }
                fieldset data-action="set-parameter" hidden {
                    legend { "The parameter" }
                    p {
                        label for="propose-key" { "Parameter (its key)" }
                        select #propose-key name="key" {
                            @for row in parameters {
                                option value=(row.key) data-class=(row.class) { (row.key) }
                            }
                        }
                    }
                    p {
                        label for="propose-value" { "Its new value, as JSON (a number, a list, or null to clear a cap or floor)" }
                        input #propose-value name="value" type="text" size="40" spellcheck="false" aria-describedby="propose-value-says";
                    }
                    p.hint #propose-value-says { "Windows are in milliseconds: 604800000 is 7 days. Shares run from 0 to 1." }
                }
                fieldset data-action="remove-deposit" hidden {
                    legend { "The deposit to remove" }
                    p {
                        label for="propose-cid" { "Its CID" }
                        input #propose-cid name="cid" type="text" size="64" spellcheck="false";
                    }
                    p {
                        label for="propose-reason" { "Why (public)" }
                        textarea #propose-reason name="reason" rows="3" cols="60" maxlength="1000" {}
                    }
                }
                p { "Its class: " strong data-proposal-class { "ordinary" } }
                button type="submit" { "Sign and propose" }
            }
            div.result role="status" aria-live="polite" data-result {}
            section aria-labelledby="parameters-heading" {
                h2 #parameters-heading { "The parameters and the class each needs" }
                div.scroll {
                    table {
                        caption { "Governable parameters" }
                        thead { tr { th scope="col" { "Key" } th scope="col" { "Lowest class" } th scope="col" { "Now" } } }
                        tbody {
                            @for row in parameters {
                                tr { th scope="row" { code { (row.key) } } td { (row.class) } td { code.wrap { (row.now) } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use substrate_core::Register;
    use substrate_core::governance::params::Parameters;

    use super::*;

    #[test]
    fn every_control_has_a_label() {
        let registers = vec!["narrative".to_owned(), "oral".to_owned()];
        let tiers: Vec<String> = ["public", "commons", "training-only", "local"].map(String::from).to_vec();
        for markup in [
            key_page(),
            deposit_page(&registers, &tiers, "substrate.local/test"),
            verify_page("substrate.local/test+00000000+AQ==", "substrate.local/test"),
            vote_form(3, true),
            withdraw_form("bafkreia", "did:key:z6Mk", "commons"),
            dispute_form("bafkreia", "narrative", &registers),
            member_read("bafkreia", "en"),
            chat_page(Some("all-MiniLM-L6-v2"), true),
            propose_page(&registers, &parameter_rows(&Parameters::new(Register::defaults()))),
        ] {
            let html = markup.into_string();
            for tag in ["<input", "<textarea", "<select"] {
                for control in html.split(tag).skip(1).filter_map(|rest| rest.split('>').next()) {
                    let id = control.split(" id=\"").nth(1).and_then(|rest| rest.split('"').next());
                    let id = id.unwrap_or_else(|| panic!("a control without an id: {tag}{control}>"));
                    assert!(html.contains(&format!("for=\"{id}\"")), "no label for #{id}");
                }
            }
        }
    }

    #[test]
    fn the_receipt_check_says_what_it_rests_on() {
        let html = verify_page("substrate.local/test+00000000+AQ==", "substrate.local/test").into_string();
        // The node serves the checking script, so the page cannot promise more than the node's honesty.
        assert!(html.contains("only as honest as the node"), "{html}");
        assert!(
            html.contains("substrate verify RECEIPT --commons-key KEY")
                && html.contains("published elsewhere")
        );
        assert!(!html.contains("nothing asked of the node"), "{html}");
    }

    #[test]
    fn the_chat_page_asks_for_the_commons_texts_only_where_an_index_holds_them() {
        let indexed = chat_page(Some("all-MiniLM-L6-v2"), true).into_string();
        assert!(indexed.contains("data-embedding=\"all-MiniLM-L6-v2\""), "{indexed}");
        assert!(indexed.contains("name=\"retrieval\" checked") && !indexed.contains("keeps no search index"));
        let bare = chat_page(None, false).into_string();
        assert!(!bare.contains("data-embedding") && !bare.contains("name=\"retrieval\" checked"), "{bare}");
        assert!(
            bare.contains("keeps no search index")
                && bare.contains("substrate serve --serve-models --search")
        );
    }

    #[test]
    fn only_narrower_tiers_are_offered() {
        let html = withdraw_form("bafkreia", "did:key:z6Mk", "commons").into_string();
        assert!(html.contains("value=\"training-only\"") && html.contains("value=\"local\""));
        assert!(!html.contains("value=\"public\""));
        let local = withdraw_form("bafkreia", "did:key:z6Mk", "local").into_string();
        assert!(!local.contains("narrow-form"));
    }

    #[test]
    fn every_parameter_key_is_offered_with_its_class_and_value() {
        let parameters = Parameters::new(Register::defaults());
        let rows = parameter_rows(&parameters);
        let row =
            |key: &str| rows.iter().find(|r| r.key == key).unwrap_or_else(|| panic!("no row for {key}"));
        assert_eq!((row("credits.floor").class, row("credits.floor").now.as_str()), ("resource", "20"));
        assert_eq!(row("mixture.cap.oral").class, "ordinary");
        assert_eq!(row("mixture.cap.oral").now, "null");
        assert_eq!(row("window.ordinary").class, "constitutional");
        assert_eq!(row("threshold.ordinary.contributor.quorum").class, "constitutional");
        // Every key the rules know, and those of every register and threshold.
        assert_eq!(rows.len(), 17 + 2 * parameters.registers.len() + 12);
    }
}
