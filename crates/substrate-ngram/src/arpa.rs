//! The ARPA back-off format, read and written: a `\data\` header with each order's count, then
//! one section per order of lines `log10(p)<TAB>w1 … wn[<TAB>log10(backoff)]`, then `\end\`.
//! Written with each order's n-grams sorted by word id, probabilities as the shortest decimal that
//! reads back to the same `f32`, and backoffs only on n-grams that are contexts.

use std::io::{BufRead, Write};

use crate::NgramError;
use crate::model::{BOS_WORD, EOS_WORD, Key, Model, UNK, Weights};

/// Writes `model` as ARPA.
pub fn write(model: &Model, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "\\data\\")?;
    for (n, count) in model.counts().iter().enumerate() {
        writeln!(out, "ngram {}={count}", n + 1)?;
    }
    let highest = model.order;
    let line = |out: &mut dyn Write, w: Weights, words: &mut dyn Iterator<Item = &str>, n: usize| {
        write!(out, "\n{}\t", w.prob)?;
        for (i, word) in words.enumerate() {
            if i > 0 {
                out.write_all(b" ")?;
            }
            out.write_all(word.as_bytes())?;
        }
        if n < highest && w.backoff != 0.0 {
            write!(out, "\t{}", w.backoff)?;
        }
        Ok::<(), std::io::Error>(())
    };
    writeln!(out, "\n\\1-grams:")?;
    for (id, w) in model.unigrams.iter().enumerate() {
        line(out, *w, &mut std::iter::once(model.words[id].as_str()), 1)?;
    }
    writeln!(out)?;
    let mask: Key = (1u128 << model.bits) - 1;
    for n in 2..=highest {
        writeln!(out, "\n\\{n}-grams:")?;
        let table = &model.higher[n - 2];
        let mut keys: Vec<Key> = table.keys().to_vec();
        keys.sort_unstable();
        for key in keys {
            let mut words = (0..n)
                .rev()
                .map(|i| model.words[((key >> (model.bits * i as u32)) & mask) as usize].as_str());
            line(out, table.get(key).unwrap_or_default(), &mut words, n)?;
        }
        writeln!(out)?;
    }
    writeln!(out, "\n\\end\\")?;
    out.flush()
}

/// Reads an ARPA model. Every n-gram's words must be among the unigrams; `<s>` and `</s>` must
/// be there; a missing `<unk>` is added with log10 probability −100, as KenLM does.
pub fn read(input: impl BufRead) -> Result<Model, NgramError> {
    let mut lines = input.lines().enumerate().map(|(i, l)| (i + 1, l));
    let bad = |line: usize, what: String| NgramError::Arpa { line, what };
    let whole = |what: String| NgramError::ArpaFile { what };
    let next = |lines: &mut dyn Iterator<Item = (usize, std::io::Result<String>)>| -> Result<Option<(usize, String)>, NgramError> {
        for (n, l) in lines {
            let l = l.map_err(|e| bad(n, format!("unreadable: {e}")))?;
            if !l.trim().is_empty() {
                return Ok(Some((n, l)));
            }
        }
        Ok(None)
    };
    // Anything before `\data\` is a comment.
    loop {
        match next(&mut lines)? {
            Some((_, l)) if l.trim() == "\\data\\" => break,
            Some(_) => continue,
            None => return Err(whole("no \\data\\ header: this is not an ARPA file".into())),
        }
    }
    let mut declared: Vec<u64> = Vec::new();
    let mut pending = None;
    while let Some((n, l)) = next(&mut lines)? {
        let Some(rest) = l.trim().strip_prefix("ngram ") else {
            pending = Some((n, l));
            break;
        };
        let (order, count) =
            rest.split_once('=').ok_or_else(|| bad(n, format!("`{l}` is not `ngram N=COUNT`")))?;
        let (order, count): (usize, u64) = match (order.trim().parse(), count.trim().parse()) {
            (Ok(o), Ok(c)) => (o, c),
            _ => return Err(bad(n, format!("`{l}` is not `ngram N=COUNT`"))),
        };
        if order != declared.len() + 1 {
            return Err(bad(n, format!("the header declares order {order} after {} orders", declared.len())));
        }
        declared.push(count);
    }
    if declared.is_empty() {
        return Err(whole("the header declares no n-gram counts".into()));
    }
    let mut model = Model::empty(declared.len())?;
    // Ids 0..3 are <unk>, <s>, </s>: a file that lacks <unk> keeps the default.
    model.unigrams[UNK as usize] = Weights { prob: -100.0, backoff: 0.0 };
    let mut seen = [false; 3];
    let mut ids: Vec<u32> = Vec::with_capacity(model.order);
    let mut section = 0usize;
    let mut found = vec![0u64; declared.len()];
    let mut current = pending;
    loop {
        let Some((n, l)) = current.take().map(Ok).or_else(|| next(&mut lines).transpose()).transpose()?
        else {
            return Err(whole("the file ends before \\end\\".into()));
        };
        let trimmed = l.trim();
        if trimmed == "\\end\\" {
            break;
        }
        if let Some(order) = trimmed.strip_prefix('\\').and_then(|s| s.strip_suffix("-grams:")) {
            let order: usize =
                order.parse().map_err(|_| bad(n, format!("`{trimmed}` is not a section header")))?;
            if order != section + 1 || order > declared.len() {
                return Err(bad(
                    n,
                    format!("section {order}-grams out of place (the header declares {})", declared.len()),
                ));
            }
            if section > 0 && found[section - 1] != declared[section - 1] {
                return Err(bad(
                    n,
                    format!(
                        "{} {section}-grams where the header declares {}",
                        found[section - 1],
                        declared[section - 1]
                    ),
                ));
            }
            section = order;
            current = None;
            continue;
        }
        if section == 0 {
            return Err(bad(n, format!("`{trimmed}` comes before any n-gram section")));
        }
        let mut fields = trimmed.split_whitespace();
        let prob = parse_float(fields.next(), n)?;
        ids.clear();
        for _ in 0..section {
            let word = fields.next().ok_or_else(|| bad(n, format!("fewer than {section} words")))?;
            let id = match section {
                1 => model.intern(word)?,
                _ => match model.vocab.get(word) {
                    Some(&id) => id,
                    None => return Err(bad(n, format!("`{word}` is not among the unigrams"))),
                },
            };
            ids.push(id);
        }
        let backoff = match fields.next() {
            None => 0.0,
            Some(_) if section == model.order => {
                return Err(bad(n, format!("a backoff weight on a {section}-gram, the highest order")));
            }
            Some(b) => parse_float(Some(b), n)?,
        };
        if fields.next().is_some() {
            return Err(bad(n, "more fields than probability, words and backoff".into()));
        }
        let w = Weights { prob, backoff };
        if section == 1 {
            if ids[0] < 3 {
                seen[ids[0] as usize] = true;
            }
            model.unigrams[ids[0] as usize] = w;
        } else {
            let key = model.pack(&ids);
            if model.higher[section - 2].insert(key, w).is_err() {
                return Err(bad(
                    n,
                    "an n-gram listed twice (or two n-grams of one 64-bit fingerprint)".into(),
                ));
            }
        }
        found[section - 1] += 1;
    }
    if section != declared.len() {
        return Err(whole(format!("{} sections where the header declares {}", section, declared.len())));
    }
    if found[section - 1] != declared[section - 1] {
        return Err(whole(format!(
            "{} {section}-grams where the header declares {}",
            found[section - 1],
            declared[section - 1]
        )));
    }
    for (i, word) in [(1, BOS_WORD), (2, EOS_WORD)] {
        if !seen[i] {
            return Err(whole(format!("no {word} among the unigrams")));
        }
    }
    add_missing_contexts(&mut model)?;
    Ok(model)
}

/// A pruned model (SRILM's, say) may hold `a b c` without its context `a b`. The scorer looks an
/// n-gram up only when its context is held, as KenLM's does, so the missing contexts are added as
/// KenLM adds them: with the probability the model gives them anyway and no backoff, which
/// changes no score. Highest order first, so a context added is itself checked one order down.
fn add_missing_contexts(model: &mut Model) -> Result<(), NgramError> {
    let mask: Key = (1u128 << model.bits) - 1;
    for n in (3..=model.order).rev() {
        let mut missing: Vec<Key> = model.higher[n - 2]
            .keys()
            .iter()
            .map(|key| key >> model.bits)
            .filter(|context| model.higher[n - 3].get(*context).is_none())
            .collect();
        missing.sort_unstable();
        missing.dedup();
        for context in missing {
            let ids: Vec<u32> =
                (0..n - 1).rev().map(|i| ((context >> (model.bits * i as u32)) & mask) as u32).collect();
            let (last, history) =
                ids.split_last().ok_or(NgramError::ArpaFile { what: "an empty n-gram".into() })?;
            let prob = model.score_next(history, *last).log10;
            model.higher[n - 3]
                .insert(context, Weights { prob, backoff: 0.0 })
                .map_err(|_| NgramError::ArpaFile { what: "two n-grams of one 64-bit fingerprint".into() })?;
        }
    }
    Ok(())
}

fn parse_float(field: Option<&str>, line: usize) -> Result<f32, NgramError> {
    let field = field.ok_or_else(|| NgramError::Arpa { line, what: "an empty line in a section".into() })?;
    match field.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(NgramError::Arpa { line, what: format!("`{field}` is not a number") }),
    }
}
