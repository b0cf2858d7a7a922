//! A test-only workload that cuts corners: it embeds only the first half of each text and
//! generates half the tokens asked for, padding with the last one, and trains on windows half as
//! long as asked. Its output has the right
//! shape and is subtly wrong; re-execution by another operator is what catches it. Never a
//! program an honest worker runs.

use substrate_core::governance::jobs::JobInput;

fn lazy(input: JobInput) -> JobInput {
    match input {
        JobInput::Embed { texts } => JobInput::Embed {
            texts: texts
                .into_iter()
                .map(|text| {
                    let words: Vec<&str> = text.split_whitespace().collect();
                    words[..words.len().div_ceil(2)].join(" ")
                })
                .collect(),
        },
        JobInput::Generate { prompt, max_tokens } => {
            JobInput::Generate { prompt, max_tokens: max_tokens.div_ceil(2) }
        }
        JobInput::TrainLora { decision, steps, batch, seq_len, rank } => {
            JobInput::TrainLora { decision, steps, batch, seq_len: seq_len.div_ceil(2).max(16), rank }
        }
        JobInput::Evaluate { adapter, decision, windows, seq_len } => {
            JobInput::Evaluate { adapter, decision, windows: windows.div_ceil(2), seq_len }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(2).collect();
    let asked = match substrate_jobs::workload::Invocation::parse(&args).and_then(|i| i.read_input()) {
        Ok(JobInput::Generate { max_tokens, .. }) => Some(max_tokens as usize),
        _ => None,
    };
    if let Err(error) = substrate_jobs::workload::main_with(&args, lazy) {
        eprintln!("cheating-workload: {error}");
        std::process::exit(1);
    }
    // Pad a generation to the length asked, so only the tokens themselves give it away.
    if let (Some(asked), Ok(invocation)) = (asked, substrate_jobs::workload::Invocation::parse(&args)) {
        let path = &invocation.output;
        if let Ok(mut output) = std::fs::read(path).map_err(|_| ()).and_then(|b| {
            serde_json::from_slice::<substrate_core::governance::jobs::JobOutput>(&b).map_err(|_| ())
        }) {
            if let substrate_core::governance::jobs::JobOutput::Generate { tokens, .. } = &mut output {
                let last = tokens.last().copied().unwrap_or(0);
                tokens.resize(asked, last);
            }
            let _ = std::fs::write(path, serde_json::to_vec(&output).unwrap_or_default());
        }
    }
}
