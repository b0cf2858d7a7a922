//! The report and the comparison for people: tables for the terminal and Markdown, SVG charts.

use substrate_ngram::ccnet::Bucket;

use super::{Comparison, Report, Row};

/// The report as a table for the terminal.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.1}%", v * 100.0));
    out.push_str(&format!(
        "{:<16} {:>6} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9}\n",
        "register",
        "texts",
        "head",
        "middle",
        "tail",
        "tokens",
        "tail tok",
        "dropped",
        "dropped",
        "median",
        "oov",
        "not"
    ));
    out.push_str(&format!(
        "{:<16} {:>6} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9}\n",
        "", "scored", "", "", "", "", "", "texts", "tokens", "ppl", "", "scored"
    ));
    for row in report.rows.iter().chain(std::iter::once(&report.all)) {
        let tokens: u64 = row.tokens.iter().sum();
        let not_scored = row.other_language + row.no_words;
        out.push_str(&format!(
            "{:<16} {:>6} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9}\n",
            row.register,
            row.scored(),
            row.texts[0],
            row.texts[1],
            row.texts[2],
            tokens,
            row.tokens[2],
            pct(row.discarded_texts()),
            pct(row.discarded_tokens()),
            row.median_perplexity.map_or("-".to_owned(), |p| format!("{p:.0}")),
            pct(row.oov_rate()),
            not_scored,
        ));
    }
    out
}

/// The report as an SVG chart: a bar per register, its scored texts split into head, middle and
/// tail, with the reference, the model's size and the cutoffs stated under it.
pub fn svg(report: &Report) -> String {
    let rows: Vec<&Row> = report.rows.iter().chain(std::iter::once(&report.all)).collect();
    let (left, bar_width, bar_height, gap, top) = (150.0, 520.0, 22.0, 10.0, 70.0);
    let height = top + rows.len() as f64 * (bar_height + gap) + 110.0;
    let width = left + bar_width + 230.0;
    let colours = ["#2b8a3e", "#f2b705", "#c92a2a"];
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">
<title>What CCNet's perplexity filter would keep of each register</title>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="20" y="28" font-size="17" font-weight="bold">What CCNet's perplexity filter would keep of each register</text>
<text x="20" y="50" fill="#444">Share of each register's eligible texts in the head, middle and tail; the tail is dropped.</text>
"##
    );
    for (i, row) in rows.iter().enumerate() {
        let y = top + i as f64 * (bar_height + gap);
        let scored = row.scored();
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\"{}>{}</text>\n",
            left - 10.0,
            y + bar_height * 0.7,
            if row.register == "all" { " font-weight=\"bold\"" } else { "" },
            escape(&row.register)
        ));
        if scored == 0 {
            svg.push_str(&format!(
                "<text x=\"{left}\" y=\"{}\" fill=\"#666\">no scored texts</text>\n",
                y + bar_height * 0.7
            ));
            continue;
        }
        let mut x = left;
        for (b, colour) in colours.iter().enumerate() {
            let w = bar_width * row.texts[b] as f64 / scored as f64;
            if w > 0.0 {
                svg.push_str(&format!(
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{bar_height}\" fill=\"{colour}\"><title>{} {}: {} of {} texts</title></rect>\n",
                    escape(&row.register),
                    Bucket::ALL[b].name(),
                    row.texts[b],
                    scored
                ));
            }
            x += w;
        }
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\">{:.0}% dropped ({} texts)</text>\n",
            left + bar_width + 8.0,
            y + bar_height * 0.7,
            row.discarded_texts().unwrap_or(0.0) * 100.0,
            scored
        ));
    }
    let y = top + rows.len() as f64 * (bar_height + gap) + 10.0;
    for (b, colour) in colours.iter().enumerate() {
        let x = left + b as f64 * 120.0;
        svg.push_str(&format!(
            "<rect x=\"{x}\" y=\"{y}\" width=\"14\" height=\"14\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\">{}</text>\n",
            x + 20.0,
            y + 12.0,
            Bucket::ALL[b].name()
        ));
    }
    let r = &report.reference;
    let notes = [
        if r.tokens == 0 {
            format!(
                "Reference: the {}-gram model {} ({}; {} n-grams).",
                r.order,
                file_name(&r.source),
                r.language,
                r.ngrams.iter().sum::<u64>()
            )
        } else {
            format!(
                "Reference: {}-gram modified Kneser-Ney on {} ({}, {} documents, {} tokens; {} n-grams).",
                r.order,
                file_name(&r.source),
                r.language,
                r.documents,
                r.tokens,
                r.ngrams.iter().sum::<u64>()
            )
        },
        format!(
            "Head below perplexity {:.0}, tail from {:.0}: {}.",
            report.head_cutoff,
            report.tail_cutoff,
            short(&report.thresholds)
        ),
        format!(
            "Commons {}, log of {} entries, snapshot {}.",
            report.commons,
            report.log_size,
            &report.snapshot_root[..12]
        ),
    ];
    for (i, note) in notes.iter().enumerate() {
        svg.push_str(&format!(
            "<text x=\"20\" y=\"{}\" fill=\"#444\" font-size=\"12\">{}</text>\n",
            y + 40.0 + i as f64 * 18.0,
            escape(note)
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

fn short(thresholds: &str) -> &str {
    thresholds.split(" (").next().unwrap_or(thresholds)
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The comparison as a Markdown table.
pub fn comparison_table(c: &Comparison) -> String {
    let mut out = String::from(
        "| register | held-out texts (in CCNet's tail) | base | (a) CCNet's kept texts | (b) governed mixture | tokens trained (a) | tokens trained (b) |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &c.rows {
        out.push_str(&format!(
            "| {} | {} ({}) | {:.2} | {:.2} | {:.2} | {} | {} |\n",
            r.register,
            r.held_out_texts,
            r.held_out_in_tail,
            r.base,
            r.ccnet,
            r.governed,
            r.ccnet_tokens,
            r.governed_tokens
        ));
    }
    out
}

/// The comparison as an SVG chart: each register's held-out perplexity, three bars.
pub fn comparison_svg(c: &Comparison) -> String {
    let (left, top, group, bar) = (150.0, 70.0, 66.0, 18.0);
    let max = c
        .rows
        .iter()
        .flat_map(|r| [r.base, r.ccnet, r.governed])
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max);
    let scale = 480.0 / max;
    let height = top + c.rows.len() as f64 * group + 105.0;
    let series = [
        ("base model", "#868e96"),
        ("(a) CCNet's kept texts", "#c92a2a"),
        ("(b) governed mixture", "#1971c2"),
    ];
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="780" height="{height}" viewBox="0 0 780 {height}" font-family="sans-serif" font-size="13">
<title>Held-out perplexity per register</title>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="20" y="28" font-size="17" font-weight="bold">Held-out perplexity per register (lower is better)</text>
<text x="20" y="50" fill="#444">The same base model, snapshot, held-out texts, steps and seed; {} steps of {} x {} tokens.</text>
"##,
        c.steps, c.batch, c.seq_len
    );
    for (i, r) in c.rows.iter().enumerate() {
        let y = top + i as f64 * group;
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
            left - 10.0,
            y + 30.0,
            escape(&r.register)
        ));
        for (k, (value, (name, colour))) in [r.base, r.ccnet, r.governed].iter().zip(series).enumerate() {
            let yy = y + k as f64 * (bar + 1.0);
            let w = if value.is_finite() { value * scale } else { 0.0 };
            svg.push_str(&format!(
                "<rect x=\"{left}\" y=\"{yy:.1}\" width=\"{w:.1}\" height=\"{bar}\" fill=\"{colour}\"><title>{}: {name} {value:.2}</title></rect><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{value:.1}</text>\n",
                escape(&r.register),
                left + w + 5.0,
                yy + 13.0
            ));
        }
    }
    let y = top + c.rows.len() as f64 * group + 10.0;
    for (k, (name, colour)) in series.iter().enumerate() {
        let x = 20.0 + k as f64 * 220.0;
        svg.push_str(&format!(
            "<rect x=\"{x}\" y=\"{y}\" width=\"14\" height=\"14\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\">{}</text>\n",
            x + 20.0,
            y + 12.0,
            escape(name)
        ));
    }
    svg.push_str(&format!(
        "<text x=\"20\" y=\"{}\" fill=\"#444\" font-size=\"12\">Commons {}, log of {} entries, snapshot {}.</text>\n<text x=\"20\" y=\"{}\" fill=\"#444\" font-size=\"12\">CCNet drops {} of the {} trainable texts (perplexity from {:.0}); (a) trains on the rest, (b) on them all.</text>\n</svg>\n",
        y + 45.0,
        escape(&c.commons),
        c.log_size,
        &c.snapshot_root[..12],
        y + 63.0,
        c.dropped_texts,
        c.trainable_texts,
        c.tail_cutoff
    ));
    svg
}
