//! `substrate search` and `substrate chat`: the commons' texts that answer a query, through a
//! node's `/v1/search`, and answers grounded in them, through its `/v1/chat/completions`.

use std::io::{BufRead, Write};

use serde_json::{Value, json};

use crate::client::{Client, segment};

/// What narrows a search, each as `/v1/search` takes it.
pub struct Filters {
    pub register: Option<String>,
    pub language: Option<String>,
    pub depositor: Option<String>,
    pub mode: Option<String>,
}

pub fn search(node: &str, query: &str, filters: &Filters, limit: usize, json: bool) -> anyhow::Result<()> {
    let mut path = format!("/v1/search?q={}&limit={limit}", segment(query));
    for (name, value) in [
        ("register", &filters.register),
        ("language", &filters.language),
        ("depositor", &filters.depositor),
        ("mode", &filters.mode),
    ] {
        if let Some(value) = value {
            path.push_str(&format!("&{name}={}", segment(value)));
        }
    }
    let found: Value = Client::new(node).get(&path)?.json()?;
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

/// What `chat` retrieves from the commons.
pub struct Grounded {
    pub passages: usize,
    pub register: Option<String>,
}

pub fn chat(
    node: &str,
    question: &str,
    model: Option<String>,
    retrieval: Option<Grounded>,
    max_tokens: u32,
    temperature: f64,
) -> anyhow::Result<()> {
    let model = model.unwrap_or_else(|| substrate_models::fetch::GENERATION.name.to_owned());
    let mut body = json!({
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": max_tokens,
        "temperature": temperature,
        "stream": true,
    });
    if let Some(grounded) = &retrieval {
        body["retrieval"] = json!({"k": grounded.passages, "register": grounded.register});
    }
    let stream = Client::new(node).post_streaming("/v1/chat/completions", &body)?;
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
    if retrieval.is_some() {
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
