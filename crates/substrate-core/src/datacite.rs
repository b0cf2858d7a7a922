//! DataCite Metadata Schema 4.x JSON (the REST API's `data.attributes` shape) for a deposit, ready
//! to register. No DOI is set: a registrar assigns one, and until then the record is a draft.

use serde_json::{Value, json};

use crate::state::{Commons, DepositRecord, DepositStatus};

/// The DataCite JSON:API document for `record`. `url` is where the deposit's landing page lives.
pub fn document(record: &DepositRecord, commons: &Commons, url: Option<&str>) -> Value {
    let mut subjects: Vec<Value> = std::iter::once(&record.register)
        .chain(&record.secondary_registers)
        .map(|r| json!({"subject": r.as_str(), "subjectScheme": "Substrate register"}))
        .collect();
    subjects.push(
        json!({"subject": format!("consent:{}", record.consent), "subjectScheme": "Substrate consent tier"}),
    );
    let mut attributes = json!({
        "types": {"resourceTypeGeneral": "Text", "resourceType": record.register.as_str()},
        "creators": [{"name": record.depositor, "nameIdentifiers": [
            {"nameIdentifier": record.depositor, "nameIdentifierScheme": "did:key"}
        ]}],
        "titles": [{"title": record.title}],
        "publisher": {"name": commons.name},
        "publicationYear": crate::timestamp::year(record.deposited_at).to_string(),
        "language": record.language,
        "subjects": subjects,
        "dates": [{"date": crate::timestamp::rfc3339(record.deposited_at), "dateType": "Submitted"}],
        "alternateIdentifiers": [
            {"alternateIdentifier": record.cid.to_string(), "alternateIdentifierType": "CID"},
            {"alternateIdentifier": record.handle, "alternateIdentifierType": "URI"}
        ],
        "sizes": [format!("{} bytes", record.size)],
        "formats": [record.media_type],
        "rightsList": [{"rights": record.license, "rightsIdentifier": record.license, "rightsIdentifierScheme": "SPDX"}],
        "descriptions": [{"description": format!("AI usage preference: {}", record.consent.aipref()), "descriptionType": "TechnicalInfo"}],
        "schemaVersion": "http://datacite.org/schema/kernel-4",
        "state": "draft"
    });
    if let Some(url) = url {
        attributes["url"] = json!(url);
    }
    if let (DepositStatus::Withdrawn { at, .. }, Some(dates)) =
        (&record.status, attributes["dates"].as_array_mut())
    {
        dates.push(json!({"date": crate::timestamp::rfc3339(*at), "dateType": "Withdrawn"}));
    }
    json!({"data": {"type": "dois", "attributes": attributes}})
}
