//! `substrate search` and `substrate chat`: the commons' texts that answer a query, through a
//! node's `/v1/search`, and answers grounded in them, through its `/v1/chat/completions`.

use std::io::{BufRead, Write};

use serde_json::{Value, json};

use crate::cli::{ChatArgs, SearchArgs};
use crate::client::{Client, segment};

/// A client of `node`, signing as the member whose key is at `key` when `member` is asked for.
fn client(node: &str, member: bool, key: Option<&std::path::Path>) -> anyhow::Result<Client> {
    if !member {
        return Ok(Client::new(node));
    }
    let (_, key) = crate::keys::load(&crate::keys::path(key)?)?;
    Ok(Client::signed(node, key))
}

pub fn search(args: SearchArgs) -> anyhow::Result<()> {
    let client = client(&args.node.node, args.member, args.key.key.as_deref())?;
    let (query, limit, json) = (args.query.as_str(), args.limit, args.json);
    let mut path = format!("/v1/search?q={}&limit={limit}", segment(query));
    for (name, value) in [
        ("register", &args.register),
        ("language", &args.language),
        ("depositor", &args.depositor),
        ("mode", &args.mode),
    ] {
        if let Some(value) = value {
            path.push_str(&format!("&{name}={}", segment(value)));
        }
    }
    let found: Value = client.get(&path)?.json()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&found)?);
        return Ok(());
    }
    let hits = found["hits"].as_array().map(Vec::as_slice).unwrap_or_default();
    println!(
        "{} text{} for \"{query}\" ({}, {} log entries indexed)",
        hits.len(),
        if hits.len() == 1 { "" } else { "s" },
        found["mode"].as_str().unwrap_or("?"),
        found["indexed"],
    );
    for (rank, hit) in hits.iter().enumerate() {
        let text = |key: &str| hit[key].as_str().unwrap_or_default().to_owned();
        let handle = hit["handle"].as_str().map_or_else(|| text("cid"), str::to_owned);
        println!();
        println!("{:>2}. {}  [{}, {}]", rank + 1, text("title"), text("register"), text("language"));
        println!("    {handle}  by {}", text("depositor"));
        println!("    {}", text("snippet").split_whitespace().collect::<Vec<_>>().join(" "));
    }
    Ok(())
}

pub fn chat(args: ChatArgs) -> anyhow::Result<()> {
    // The models answer members: sign whenever there is a key to sign with.
    let key = args.key.key.as_deref();
    let signing = args.member || key.is_some() || crate::keys::path(None).is_ok_and(|p| p.exists());
    let client = client(&args.node.node, signing, key)?;
    let model = args.model.unwrap_or_else(|| substrate_models::fetch::GENERATION.name.to_owned());
    let mut body = json!({
        "model": model,
        "messages": [{"role": "user", "content": args.question}],
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "stream": true,
    });
    let retrieval = !args.no_retrieval;
    if retrieval {
        body["retrieval"] = json!({"k": args.passages, "register": args.register});
    }
    let stream = client.post_streaming("/v1/chat/completions", &body)?;
    let mut out = std::io::stdout().lock();
    let mut citations = Vec::new();
    for line in std::io::BufReader::new(stream).lines() {
        let line = line.map_err(|e| anyhow::anyhow!("the answer's stream broke off: {e}"))?;
        let Some(data) = line.strip_prefix("data: ") else { continue };
        if data == "[DONE]" {
            break;
        }
        let chunk: Value = serde_json::from_str(data)
            .map_err(|e| anyhow::anyhow!("the node sent an event that is not JSON ({e}): {data}"))?;
        if let Some(error) = chunk.get("error") {
            anyhow::bail!("the model failed: {}", error["message"].as_str().unwrap_or("(no message)"));
        }
        if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
            write!(out, "{piece}")?;
            out.flush()?;
        }
        if let Some(found) = chunk["citations"].as_array() {
            citations.clone_from(found);
        }
    }
    writeln!(out)?;
    if retrieval {
        writeln!(out)?;
        if citations.is_empty() {
            writeln!(out, "no passage of the commons was found for this question")?;
        } else {
            writeln!(out, "drawn from:")?;
        }
        for citation in &citations {
            let text = |key: &str| citation[key].as_str().unwrap_or_default().to_owned();
            let handle = citation["handle"].as_str().map_or_else(|| text("cid"), str::to_owned);
            let cited = if citation["referenced"] == true { "cited" } else { "not cited" };
            writeln!(
                out,
                "  [{}] {} ({}, {}; {cited})\n      {handle} bytes {}..{}\n      by {}",
                citation["index"],
                text("title"),
                text("register"),
                text("license"),
                citation["span"]["start"],
                citation["span"]["end"],
                text("depositor"),
            )?;
        }
    }
    Ok(())
}

/// How `audit answers` asks its questions.
pub struct AuditSettings {
    pub model: Option<String>,
    pub passages: usize,
    pub min_words: usize,
    pub max_tokens: u32,
}

/// An answer as the audit reads it: its text and what it cites.
#[derive(Debug, Default)]
struct Answered {
    text: String,
    citations: Vec<Cited>,
}

#[derive(Debug)]
struct Cited {
    index: u64,
    source: Source,
    /// The span of the text the citation names, and the quote it gives for it.
    span: (usize, usize),
    quote: String,
}

/// A deposit as the log records it, with its text.
#[derive(Clone, Debug, Default, PartialEq)]
struct Source {
    cid: String,
    depositor: String,
    register: String,
    license: String,
    text: String,
}

/// The words of `text`, lower-cased: runs of letters and digits.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// Whether `answer` shares `min_words` words in a row with `text`.
fn quotes(answer: &[String], text: &str, min_words: usize) -> bool {
    let min_words = min_words.max(1);
    let text = words(text);
    if answer.len() < min_words || text.len() < min_words {
        return false;
    }
    let runs: std::collections::HashSet<&[String]> = text.windows(min_words).collect();
    answer.windows(min_words).any(|run| runs.contains(run))
}

/// The served-answer stages: every deposit an answer quotes must be among its citations,
/// attributed as the log records it with its quote the span it names (`answer citations`), and
/// named by its number in the answer's text (`answer text`).
fn answer_stages(
    answers: &[(Answered, Vec<Source>)],
    min_words: usize,
) -> Vec<substrate_training::audit::Stage> {
    use substrate_training::audit::Stage;
    let mut cited =
        Stage { name: "answer citations", entered: 0, missing: Vec::new(), misattributed: Vec::new() };
    let mut named = Stage { name: "answer text", entered: 0, missing: Vec::new(), misattributed: Vec::new() };
    for (n, (answer, sources)) in answers.iter().enumerate() {
        let said = words(&answer.text);
        for source in sources.iter().filter(|s| quotes(&said, &s.text, min_words)) {
            let id = format!("answer {}: {}", n + 1, source.cid);
            cited.entered += 1;
            named.entered += 1;
            let Some(citation) = answer.citations.iter().find(|c| c.source.cid == source.cid) else {
                cited.missing.push(id.clone());
                named.missing.push(id);
                continue;
            };
            let mut wrong = Vec::new();
            for (what, stated, recorded) in [
                ("depositor", &citation.source.depositor, &source.depositor),
                ("register", &citation.source.register, &source.register),
                ("license", &citation.source.license, &source.license),
            ] {
                if stated != recorded {
                    wrong.push(format!("{what} {stated} where the log has {recorded}"));
                }
            }
            if source.text.get(citation.span.0..citation.span.1) != Some(citation.quote.as_str()) {
                wrong.push(format!(
                    "the quote is not bytes {}..{} of the text",
                    citation.span.0, citation.span.1
                ));
            }
            if !wrong.is_empty() {
                cited.misattributed.push((id.clone(), wrong.join("; ")));
            }
            if !answer.text.contains(&format!("[{}]", citation.index)) {
                named.missing.push(id);
            }
        }
    }
    vec![cited, named]
}

/// A deposit's record and text from the node; `None` if its text is not served (withdrawn, or
/// not public).
fn source(client: &Client, cid: &str) -> anyhow::Result<Option<Source>> {
    let record: Value = client.get(&format!("/v1/deposits/{}", segment(cid)))?.json()?;
    let d = &record["deposit"];
    let Ok(text) = client.get_bytes(&format!("/v1/deposits/{}/content", segment(cid))) else {
        return Ok(None);
    };
    let field = |key: &str| d[key].as_str().unwrap_or_default().to_owned();
    Ok(Some(Source {
        cid: cid.to_owned(),
        depositor: field("depositor"),
        register: field("register"),
        license: field("license"),
        text: String::from_utf8_lossy(&text).into_owned(),
    }))
}

pub fn audit_answers(
    node: &str,
    questions: &std::path::Path,
    asked: &AuditSettings,
    json: bool,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(questions)
        .map_err(|e| anyhow::anyhow!("reading the questions {}: {e}", questions.display()))?;
    let questions: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    anyhow::ensure!(!questions.is_empty(), "no questions: give a file with one question per line");
    let client = Client::new(node);
    let model = asked.model.clone().unwrap_or_else(|| substrate_models::fetch::GENERATION.name.to_owned());
    let mut answers = Vec::with_capacity(questions.len());
    for question in &questions {
        let body = json!({
            "model": model,
            "messages": [{"role": "user", "content": question}],
            "max_tokens": asked.max_tokens,
            "temperature": 0,
            "retrieval": {"k": asked.passages},
        });
        let reply: Value = client.post("/v1/chat/completions", &body)?.json()?;
        let said = reply["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_owned();
        // What it could quote: the texts it was given, and those that share the answer's words.
        let mut sources: Vec<Source> = Vec::new();
        let mut citations = Vec::new();
        for citation in reply["citations"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let field = |key: &str| citation[key].as_str().unwrap_or_default().to_owned();
            let span = (
                citation["span"]["start"].as_u64().unwrap_or(0) as usize,
                citation["span"]["end"].as_u64().unwrap_or(0) as usize,
            );
            let stated = Source {
                cid: field("cid"),
                depositor: field("depositor"),
                register: field("register"),
                license: field("license"),
                text: String::new(),
            };
            citations.push(Cited {
                index: citation["index"].as_u64().unwrap_or(0),
                source: stated,
                span,
                quote: field("quote"),
            });
        }
        let query: String = said.chars().take(1000).collect();
        let mut candidates: Vec<String> = citations.iter().map(|c| c.source.cid.clone()).collect();
        if !query.trim().is_empty() {
            let found: Value =
                client.get(&format!("/v1/search?q={}&mode=bm25&limit=20", segment(&query)))?.json()?;
            for hit in found["hits"].as_array().map(Vec::as_slice).unwrap_or_default() {
                candidates.extend(hit["cid"].as_str().map(str::to_owned));
            }
        }
        candidates.sort();
        candidates.dedup();
        for cid in candidates {
            sources.extend(source(&client, &cid)?);
        }
        answers.push((Answered { text: said, citations }, sources));
    }
    let stages = answer_stages(&answers, asked.min_words);
    if json {
        let rows: Vec<Value> = stages
            .iter()
            .map(|s| json!({"stage": s.name, "entered": s.entered, "missing": s.missing, "misattributed": s.misattributed, "per": s.rate()}))
            .collect();
        let answers: Vec<Value> = answers
            .iter()
            .zip(&questions)
            .map(|((a, _), q)| json!({"question": q, "answer": a.text, "cited": a.citations.iter().map(|c| &c.source.cid).collect::<Vec<_>>()}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({"stages": rows, "answers": answers}))?);
        return Ok(());
    }
    println!(
        "provenance erasure rate of {}'s answers to {} questions ({} passages each; a quote is {} words in a row)",
        model,
        questions.len(),
        asked.passages,
        asked.min_words
    );
    print!("{}", substrate_training::audit::table(&stages));
    for stage in &stages {
        for id in stage.missing.iter().take(5) {
            println!("  {}: {id} is quoted and not cited", stage.name);
        }
        for (id, what) in stage.misattributed.iter().take(5) {
            println!("  {}: {id} is misattributed: {what}", stage.name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Answered, Cited, Source, answer_stages, quotes, words};

    fn source(cid: &str, text: &str) -> Source {
        Source {
            cid: cid.into(),
            depositor: "did:key:ada".into(),
            register: "oral".into(),
            license: "CC-BY-4.0".into(),
            text: text.into(),
        }
    }

    fn cite(index: u64, source: &Source) -> Cited {
        let quote = source.text[..10].to_owned();
        Cited { index, source: Source { text: String::new(), ..source.clone() }, span: (0, 10), quote }
    }

    const SONG: &str = "the old women of the village sang the water song at the well every evening";

    #[test]
    fn a_quote_is_a_run_of_words_in_a_row() {
        let said = words("As they say, THE OLD WOMEN of the village sang the water song, it seems.");
        assert!(quotes(&said, SONG, 8));
        assert!(!quotes(&said, SONG, 12));
        assert!(!quotes(&words("the village well"), SONG, 8));
    }

    #[test]
    fn every_erasure_is_counted_at_its_stage() {
        let song = source("song", SONG);
        let other = source("other", "a text the answer does not quote at all, about herons");
        let quoting = "The old women of the village sang the water song at the well";
        // Cited and named: nothing lost.
        let fine = Answered { text: format!("{quoting} [1]."), citations: vec![cite(1, &song)] };
        // Quoted, never cited.
        let uncited = Answered { text: quoting.into(), citations: vec![cite(1, &other)] };
        // Cited, not named in the text.
        let unnamed = Answered { text: quoting.into(), citations: vec![cite(1, &song)] };
        // Cited under another depositor, with a quote that is not its span.
        let mut wrong = cite(1, &song);
        wrong.source.depositor = "did:key:bo".into();
        wrong.quote = "something else".into();
        let misattributed = Answered { text: format!("{quoting} [1]"), citations: vec![wrong] };
        let answers = vec![
            (fine, vec![song.clone(), other.clone()]),
            (uncited, vec![song.clone(), other.clone()]),
            (unnamed, vec![song.clone()]),
            (misattributed, vec![song.clone()]),
        ];
        let stages = answer_stages(&answers, 8);
        let (cited, named) = (&stages[0], &stages[1]);
        assert_eq!(cited.entered, 4);
        assert_eq!(cited.missing, ["answer 2: song"]);
        assert_eq!(cited.misattributed.len(), 1);
        assert_eq!(cited.misattributed[0].0, "answer 4: song");
        assert!(cited.misattributed[0].1.contains("depositor did:key:bo"), "{:?}", cited.misattributed);
        assert!(cited.misattributed[0].1.contains("quote"), "{:?}", cited.misattributed);
        assert_eq!(named.missing, ["answer 2: song", "answer 3: song"]);
        assert!((cited.rate() - 0.5).abs() < 1e-12);
    }
}
