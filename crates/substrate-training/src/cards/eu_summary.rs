//! The EU AI Act public summary of training content, filled from the run's record.

use super::*;

/// The EU AI Act public summary of training content (Article 53(1)(d)), following the
/// Commission's template of July 2025 section by section, and saying which items do not apply.
pub fn eu_training_summary(record: &RunRecord) -> String {
    let name = format!("{} LoRA adapter, snapshot {}", record.commons.name, short(&record.snapshot_root));
    let snapshot_tokens: u64 = record.contributions.iter().map(|c| c.tokens).sum();
    let snapshot_bytes: u64 = record.contributions.iter().map(|c| c.entry.bytes).sum();
    let held_out = record.contributions.iter().filter(|c| c.held_out).count();
    let depositors = record.contributors().len();
    let registers = registers_of_deposits(record);
    let languages = languages(record);
    let tiers = consent_counts(record);
    let [small, medium, large] = size_bins(snapshot_tokens);
    let no = "☐ Yes ☒ No";

    let mut out = vec![format!("# Public Summary of Training Content for {name}")];
    out.push(String::new());
    out.push("Version of the Summary: 1".into());
    out.push(format!("Last update: {}", day_month_year(&record.finished)));
    out.push(String::new());
    out.push(format!(
        "This summary follows the European Commission's template for the public summary of training content of \
         general-purpose AI models (AI Act, Article 53(1)(d), July 2025). The adapter is a fine-tune of `{}`: it covers \
         only the data of this fine-tuning run, and the base model's own training content is for its provider's summary. \
         Whether this adapter is a general-purpose AI model under the Act is not assessed here. Items that do not apply \
         say so.",
        record.base_model.name
    ));
    out.push(String::new());

    out.push("## 1. General information".into());
    out.push(String::new());
    out.push("### 1.1. Provider identification".into());
    out.push(String::new());
    out.push(format!(
        "- Provider name and contact details: the commons {} (origin `{}`, log key `{}`); the run was executed by its node `{}`. \
         Contact details are not part of the run record.",
        record.commons.name, record.commons.origin, record.commons.log_key, record.node
    ));
    out.push(
        "- Authorised representative name and contact details: Not applicable (not part of the run record)."
            .into(),
    );
    out.push(String::new());
    out.push("### 1.2. Model identification".into());
    out.push(String::new());
    out.push(format!("- Versioned model name(s): {name} (snapshot root `{}`)", record.snapshot_root));
    out.push(format!(
        "- Model dependencies: a LoRA adapter (PEFT) of `{}`, sha256 `{}`; see that model's provider for its summary.",
        record.base_model.name, record.base_model.sha256
    ));
    out.push(format!(
        "- Date of placement of the model on the Union market: Not applicable: the run finished on {}; the record does \
         not say whether or when the adapter is placed on the market.",
        record.finished
    ));
    out.push(String::new());
    out.push("### 1.3. Modalities, overall training data size and other characteristics".into());
    out.push(String::new());
    out.push("| Modality | Training data size | Types of content |".into());
    out.push("|---|---|---|".into());
    out.push(format!(
        "| ☒ Text | {} Less than 1 billion tokens {} 1 billion to 10 trillion tokens {} More than 10 trillion tokens | \
         Texts deposited to the commons in the registers {} |",
        check(small),
        check(medium),
        check(large),
        list_or_none(&registers.keys().map(String::as_str).collect::<Vec<_>>())
    ));
    out.push("| ☐ Image | Not applicable | Not applicable |".into());
    out.push("| ☐ Audio | Not applicable | Not applicable |".into());
    out.push("| ☐ Video | Not applicable | Not applicable |".into());
    out.push("| ☐ Other | Not applicable | Not applicable |".into());
    out.push(String::new());
    out.push(format!(
        "- Alternatively, specify the approximate size in a different measurement unit: {} texts, {} bytes, {} tokens \
         of the base model's tokenizer. The run trained on {} tokens in {} windows (a text can be drawn more than once); \
         texts held out to measure the loss, never trained on: {}.",
        record.contributions.len(),
        snapshot_bytes,
        snapshot_tokens,
        record.tokens_trained,
        record.windows,
        held_out
    ));
    out.push(format!(
        "- Latest date of data acquisition/collection for model training: the snapshot is the commons' log as of its \
         first {} entries, taken no later than {} (the start of the run). The run record does not keep each deposit's date.",
        record.log_size, record.started
    ));
    let language_counts: Vec<String> =
        languages.iter().map(|(l, n)| format!("{l} ({})", texts(*n))).collect();
    out.push(format!(
        "- Description of the linguistic characteristics of the overall training data: languages as the depositors \
         declared them (primary BCP 47 subtag): {}.",
        list_or_none(&language_counts.iter().map(String::as_str).collect::<Vec<_>>())
    ));
    let register_counts: Vec<String> =
        registers.iter().map(|(r, n)| format!("{r} ({})", texts(*n))).collect();
    out.push(format!(
        "- Other relevant characteristics of the overall training data: registers: {}. The register shares of the \
         trained tokens follow the mixture: {}.",
        list_or_none(&register_counts.iter().map(String::as_str).collect::<Vec<_>>()),
        decision_sentence(record)
    ));
    out.push("- Additional comments (optional): the manifest (`manifest.jsonl`) and its Croissant description (`croissant.json`) list every text.".into());
    out.push(String::new());

    out.push("## 2. List of data sources".into());
    out.push(String::new());
    out.push("### 2.1. Publicly available datasets".into());
    out.push(String::new());
    out.push(format!("- Have you used publicly available datasets to train the model? {no}"));
    out.push("- If yes, specify the modality(ies) of the content covered by the datasets concerned: Not applicable".into());
    out.push("- List of large publicly available datasets: Not applicable".into());
    out.push(
        "- General description of other publicly available datasets not listed above: Not applicable".into(),
    );
    out.push(String::new());
    out.push("### 2.2. Private non-publicly available datasets obtained from third parties".into());
    out.push(String::new());
    out.push("#### 2.2.1. Datasets commercially licensed by rightsholders or their representatives".into());
    out.push(String::new());
    out.push(format!(
        "- Have you concluded transactional commercial licensing agreement(s) with rightsholder(s) or with their representatives? {no}"
    ));
    out.push("- If yes, specify the modality(ies) of the content covered by the datasets concerned: Not applicable".into());
    out.push(String::new());
    out.push("#### 2.2.2. Private datasets obtained from other third parties".into());
    out.push(String::new());
    out.push(format!(
        "- Have you obtained private datasets from third parties that are not licensed as described in Section 2.2.1, \
         such as data obtained from providers of private databases, or data intermediaries? {no}"
    ));
    out.push("- If yes, specify the modality(ies) of the content covered by the datasets concerned: Not applicable".into());
    out.push(
        "- If publicly known, list private datasets obtained from other third parties: Not applicable".into(),
    );
    out.push("- General description of non-publicly known private datasets obtained from third parties: Not applicable: every text was deposited directly to the commons by its depositor (see 2.4).".into());
    out.push(String::new());
    out.push("### 2.3. Data crawled and scraped from online sources".into());
    out.push(String::new());
    out.push(format!("- Were crawlers used by the provider or on behalf of? {no}"));
    out.push("- If yes, specify crawler name(s)/identifier(s), purposes, behaviour, period, content and domains: Not applicable".into());
    out.push(String::new());
    out.push("### 2.4. User data".into());
    out.push(String::new());
    out.push(format!(
        "- Was data from user interactions with the AI model (e.g. user input and prompts) used to train the model? {no}"
    ));
    out.push(
        "- Was data collected from user interactions with the provider's other services or products used to train the model? ☒ Yes ☐ No"
            .into(),
    );
    out.push(format!(
        "- If yes, provide a general description of the provider's services or products that were used to collect the \
         user data: one source, private and not publicly available, contributed by its users: the deposits of the \
         commons {}. Depositors (people and agents) deposit texts through the commons' ledger, each deposit a signed event in its \
         transparency log with a declared register, consent tier, licence and language, and each depositor holds a \
         signed receipt. This run used {} deposits by {} depositors: {} tokens, registers {}, languages {}, deposited \
         in the log's first {} entries (the snapshot, taken by {}).",
        record.commons.name,
        record.contributions.len(),
        depositors,
        snapshot_tokens,
        list_or_none(&registers.keys().map(String::as_str).collect::<Vec<_>>()),
        list_or_none(&languages.keys().map(String::as_str).collect::<Vec<_>>()),
        record.log_size,
        record.started
    ));
    out.push("- Type of modality covered: ☒ Text ☐ Image ☐ Video ☐ Audio ☐ Other".into());
    out.push(String::new());
    out.push("### 2.5. Synthetic data".into());
    out.push(String::new());
    out.push(format!("- Was synthetic AI-generated data created by the provider or on their behalf to train the model? {no}"));
    out.push("- If yes, modality, and models used to generate it: Not applicable".into());
    out.push("- Additional comments (optional): agents as well as people may deposit texts, and the commons does not label AI-generated text, so deposits may contain some.".into());
    out.push(String::new());
    out.push("### 2.6. Other sources of data".into());
    out.push(String::new());
    out.push(format!("- Have data sources other than those described in Sections 2.1 to 2.5 been used to train the model? {no}"));
    out.push(
        "- If yes, provide a narrative description of these data sources and the data: Not applicable".into(),
    );
    out.push(String::new());

    out.push("## 3. Data processing aspects".into());
    out.push(String::new());
    out.push(
        "### 3.1. Respect of reservation of rights from text and data mining exception or limitation".into(),
    );
    out.push(String::new());
    out.push(
        "- Are you a Signatory to the Code of Practice for general-purpose AI models that includes commitments to \
         respect reservations of rights from the TDM exception or limitation? ☐ Yes ☐ No: not part of the run record."
            .into(),
    );
    let tier_counts: Vec<String> = tiers.iter().map(|(t, n)| format!("{t}: {n}")).collect();
    out.push(format!(
        "- Describe the measures implemented before model training to respect reservations of rights: no text was \
         collected under the TDM exception. Every text was deposited by its depositor, who chose its consent tier and \
         licence; training follows the tier. The tiers public, commons and training-only allow training; a local text \
         trains only on the node that holds it and never leaves it. Texts in this run per tier: {}{}. A depositor \
         can withdraw a deposit or narrow its consent at any time, never widen it; a withdrawn deposit is excluded from \
         every later snapshot, and an adapter already trained on it is marked in the commons' registry.",
        tier_counts.join(", "),
        if record.local_texts > 0 {
            format!("; the {} of the local tier trained here, on the node holding it (`{}`)", texts(record.local_texts), record.node)
        } else {
            String::new()
        }
    ));
    out.push(String::new());
    out.push("### 3.2. Removal of illegal content".into());
    out.push(String::new());
    out.push(
        "- General description of measures taken: the snapshot holds active deposits only. A deposit under an open \
         dispute is not in it, nor is one withdrawn or removed by a dispute ruling before the snapshot; content removed \
         after the snapshot leaves every later snapshot and marks this adapter. The run applies no automated content \
         filter of its own."
            .into(),
    );
    out.push(String::new());
    out.push("### 3.3. Other information (optional)".into());
    out.push(String::new());
    out.push(format!(
        "- Other relevant information about data processing (optional): the snapshot is named by the RFC 6962 root `{}` \
         over its entries, which anyone holding the commons' log recomputes. {}",
        record.snapshot_root,
        if record.registers_without_text.is_empty() {
            "Every register with weight had eligible text.".to_owned()
        } else {
            format!(
                "Registers the mixture gives weight but which had no eligible text: {}; their weight went to the others in proportion.",
                record.registers_without_text.join(", ")
            )
        }
    ));
    lines(out)
}

/// The template's three text-size bins (under 10^9 tokens, up to 10^13, more): which one holds.
pub(super) fn size_bins(tokens: u64) -> [bool; 3] {
    const BILLION: u64 = 1_000_000_000;
    const TEN_TRILLION: u64 = 10_000_000_000_000;
    [tokens < BILLION, (BILLION..=TEN_TRILLION).contains(&tokens), tokens > TEN_TRILLION]
}

fn check(ticked: bool) -> &'static str {
    if ticked { "☒" } else { "☐" }
}

/// `dd/mm/yyyy` of an RFC 3339 time, as the template writes dates; the time as given otherwise.
fn day_month_year(rfc3339: &str) -> String {
    match (rfc3339.get(0..4), rfc3339.get(5..7), rfc3339.get(8..10)) {
        (Some(y), Some(m), Some(d)) if [y, m, d].iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())) => {
            format!("{d}/{m}/{y}")
        }
        _ => rfc3339.to_owned(),
    }
}
