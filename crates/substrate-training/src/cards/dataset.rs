//! The Croissant 1.1 description of a run's snapshot, with the RAI extension.

use super::*;

/// The Croissant 1.1 JSON-LD context, as mlcroissant 1.1.1 compares it: the spec's appendix
/// context with https schema.org (the package refuses http), plus the RAI prefix. Terms mapped to
/// a plain IRI; [`CONTEXT_TYPED_TERMS`] are the ones that also carry a type.
const CONTEXT_TERMS: [(&str, &str); 42] = [
    ("@language", "en"),
    ("@vocab", "https://schema.org/"),
    ("sc", "https://schema.org/"),
    ("cr", "http://mlcommons.org/croissant/"),
    ("rai", "http://mlcommons.org/croissant/RAI/"),
    ("dct", "http://purl.org/dc/terms/"),
    ("annotation", "cr:annotation"),
    ("arrayShape", "cr:arrayShape"),
    ("citeAs", "cr:citeAs"),
    ("column", "cr:column"),
    ("conformsTo", "dct:conformsTo"),
    ("containedIn", "cr:containedIn"),
    ("equivalentProperty", "cr:equivalentProperty"),
    ("excludes", "cr:excludes"),
    ("extract", "cr:extract"),
    ("field", "cr:field"),
    ("fileProperty", "cr:fileProperty"),
    ("fileObject", "cr:fileObject"),
    ("fileSet", "cr:fileSet"),
    ("format", "cr:format"),
    ("includes", "cr:includes"),
    ("isArray", "cr:isArray"),
    ("isLiveDataset", "cr:isLiveDataset"),
    ("jsonPath", "cr:jsonPath"),
    ("key", "cr:key"),
    ("md5", "cr:md5"),
    ("parentField", "cr:parentField"),
    ("path", "cr:path"),
    ("readLines", "cr:readLines"),
    ("recordSet", "cr:recordSet"),
    ("references", "cr:references"),
    ("regex", "cr:regex"),
    ("repeated", "cr:repeated"),
    ("replace", "cr:replace"),
    ("samplingRate", "cr:samplingRate"),
    ("sdVersion", "cr:sdVersion"),
    ("separator", "cr:separator"),
    ("source", "cr:source"),
    ("subField", "cr:subField"),
    ("transform", "cr:transform"),
    ("unArchive", "cr:unArchive"),
    ("value", "cr:value"),
];

/// Context terms with an `@type`: (term, IRI, type).
const CONTEXT_TYPED_TERMS: [(&str, &str, &str); 3] = [
    ("data", "cr:data", "@json"),
    ("dataType", "cr:dataType", "@vocab"),
    ("examples", "cr:examples", "@json"),
];

fn croissant_context() -> Value {
    let mut context = serde_json::Map::new();
    for (term, iri) in CONTEXT_TERMS {
        context.insert(term.to_owned(), json!(iri));
    }
    for (term, iri, kind) in CONTEXT_TYPED_TERMS {
        context.insert(term.to_owned(), json!({"@id": iri, "@type": kind}));
    }
    Value::Object(context)
}

/// The manifest's columns as Croissant fields: (name, schema.org type, description).
const MANIFEST_COLUMNS: [(&str, &str, &str); 13] = [
    ("cid", "sc:Text", "CIDv1 (raw, sha2-256) of the deposited text."),
    ("handle", "sc:Text", "The commons' persistent handle of the deposit."),
    ("register", "sc:Text", "The register the depositor declared (what kind of text it is)."),
    ("depositor", "sc:Text", "The depositor's did:key."),
    ("consent", "sc:Text", "The consent tier: public, commons, training-only or local."),
    ("bytes", "sc:Integer", "The text's size in bytes."),
    ("tokens", "sc:Integer", "The text's length in the base model's tokens."),
    ("tokens_trained", "sc:Integer", "Tokens of this text the run trained on, over all its windows."),
    ("windows", "sc:Integer", "Training windows drawn from this text."),
    ("held_out", "sc:Boolean", "Whether the text was held out to measure the loss (never trained on)."),
    ("license", "sc:Text", "The licence the depositor declared (SPDX id)."),
    ("language", "sc:Text", "The text's language (BCP 47)."),
    ("title", "sc:Text", "The deposit's title."),
];

/// A Croissant 1.1 description of the run's snapshot, with the RAI extension: the manifest
/// (`manifest_name`, whose bytes hash to `manifest_sha256`, lowercase hex) as its one file and
/// one record set, `deposits`, read from the manifest's columns.
pub fn croissant(record: &RunRecord, manifest_name: &str, manifest_sha256: &str) -> Value {
    let uri = snapshot_uri(record);
    let root = short(&record.snapshot_root);
    let commons = &record.commons.name;
    let fields: Vec<Value> = MANIFEST_COLUMNS
        .iter()
        .map(|(name, data_type, description)| {
            json!({
                "@type": "cr:Field",
                "@id": format!("deposits/{name}"),
                "name": name,
                "description": description,
                "dataType": data_type,
                "source": {"fileObject": {"@id": manifest_name}, "extract": {"column": name}},
            })
        })
        .collect();
    let license: Vec<Value> = match licences(record) {
        Licences::One { spdx, .. } => vec![json!(spdx_url(&spdx).unwrap_or(spdx))],
        Licences::Several(all) => all.into_iter().map(|l| json!(spdx_url(&l).unwrap_or(l))).collect(),
    };
    let registers: Vec<&str> = record
        .contributions
        .iter()
        .map(|c| c.entry.register.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let languages: Vec<String> = languages(record).into_keys().collect();
    let citation_year = year(&record.finished).or_else(|| year(&record.started)).unwrap_or("n.d.");
    json!({
        "@context": croissant_context(),
        "@type": "sc:Dataset",
        "conformsTo": ["http://mlcommons.org/croissant/1.1", "http://mlcommons.org/croissant/RAI/1.0"],
        "name": format!("{commons} training snapshot {root}"),
        "description": format!(
            "The deposits of the commons {commons} that the training run of {} used: the log of {} as of its first {} \
             entries, snapshot root {}. One manifest record per deposit (its CID, handle, register, depositor, consent \
             tier, size, licence, language and what the run trained on it); the texts themselves are not part of this \
             description and travel only as each depositor's consent tier allows.",
            record.finished, record.commons.origin, record.log_size, record.snapshot_root
        ),
        "license": license,
        "url": uri,
        "identifier": uri,
        "creator": {"@type": "sc:Organization", "name": commons, "description": format!("The commons whose log is {}, signed by the key {}.", record.commons.origin, record.commons.log_key)},
        "datePublished": record.finished,
        // A snapshot never changes: another root is another dataset, so this one has one version.
        "version": "1.0.0",
        "citeAs": format!(
            "@misc{{substrate_snapshot_{root}, title={{{} training snapshot {root}}}, author={{{}}}, year={{{citation_year}}}, howpublished={{{uri}}}, note={{log size {}, snapshot root {}}}}}",
            bibtex(commons),
            bibtex(commons),
            record.log_size,
            record.snapshot_root
        ),
        "keywords": registers,
        "inLanguage": languages,
        "distribution": [{
            "@type": "cr:FileObject",
            "@id": manifest_name,
            "name": manifest_name,
            "description": "One JSON object per line, one line per deposit of the snapshot, in CID order.",
            "contentUrl": manifest_name,
            "encodingFormat": "application/jsonlines",
            "sha256": manifest_sha256,
        }],
        "recordSet": [{
            "@type": "cr:RecordSet",
            "@id": "deposits",
            "name": "deposits",
            "description": "One record per deposit in the snapshot.",
            "key": {"@id": "deposits/cid"},
            "field": fields,
        }],
        "rai:dataCollection": format!(
            "Texts deposited by the members of the commons {commons}, each deposit a signed event (DSSE around an in-toto \
             statement) appended to the commons' transparency log; every depositor holds a signed receipt with an \
             inclusion proof that verifies offline. Each depositor declared the text's register, consent tier, licence \
             and language."
        ),
        "rai:dataCollectionType": ["Direct deposit by the texts' depositors (user-contributed)"],
        "rai:dataPreprocessingProtocol": [
            "Snapshot: every active deposit (not withdrawn, not removed) not under an open dispute whose register is in the mixture, sorted by CID and named by an RFC 6962 root over its entries.",
            format!(
                "Training windows of {} tokens drawn by register weight, seeded by the snapshot root; held-out texts measure the loss and are never trained on.",
                record.hyperparameters.seq_len
            ),
        ],
        "rai:dataUseCases": [
            format!("Fine-tuning a LoRA adapter of {} under the training mixture the commons decided.", record.base_model.name),
            "Auditing which deposits a run used and how much of each it trained on.",
        ],
        "rai:dataLimitations": data_limitations(record),
        "rai:dataBiases": data_biases(record),
        "rai:personalSensitiveInformation": [
            "Depositors are identified by did:key public keys, which are pseudonymous but linkable across deposits.",
            "Texts may hold personal information their depositors chose to share; registers such as sacred or oral may hold culturally sensitive material. The texts are not distributed with this description.",
        ],
        "rai:dataSocialImpact": "Training on texts their depositors chose to share, in shares the commons voted, lets a community shape the model it uses; an adapter can still reproduce the style or content of what it was trained on.",
        "rai:dataReleaseMaintenancePlan": "The snapshot is immutable and named by its root. A depositor may withdraw a deposit at any time: it is deleted from every blob store, excluded from every later snapshot, and every adapter trained on it is marked in the commons' registry; nothing claims such an adapter unlearned it.",
    })
}

fn data_limitations(record: &RunRecord) -> Vec<String> {
    let mut limitations = vec![
        "Registers, languages and licences are declared by the depositors, not checked.".to_owned(),
        format!("A small, member-contributed collection: {} deposits.", record.contributions.len()),
    ];
    if !record.registers_without_text.is_empty() {
        limitations.push(format!(
            "Registers the mixture gives weight but no eligible text: {}.",
            record.registers_without_text.join(", ")
        ));
    }
    let local = record.contributions.iter().filter(|c| c.entry.consent == ConsentTier::Local).count() as u64;
    if local > 0 {
        limitations
            .push(format!("{} of the local tier: they never leave the node holding them.", texts(local)));
    }
    limitations
}

fn data_biases(record: &RunRecord) -> Vec<String> {
    let shares: Vec<String> = registers(record)
        .into_iter()
        .map(|r| {
            format!(
                "{r} decided {} / achieved {}",
                percent(record.mixture.get(r).copied().unwrap_or(0.0)),
                percent(record.achieved.get(r).copied().unwrap_or(0.0))
            )
        })
        .collect();
    vec![
        format!(
            "Register shares of the trained tokens follow mixture weights chosen by a vote of the commons' members ({}), not the distribution of the deposits: {}.",
            decision_sentence(record),
            shares.join("; ")
        ),
        "Over-represents whoever deposits most within a register.".to_owned(),
    ]
}
