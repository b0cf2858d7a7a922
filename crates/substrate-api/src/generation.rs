//! The generation thread the OpenAI and Ollama routes share: it decodes on a thread of its own,
//! hands the text over as it comes (held back where it may begin a stop sequence), settles what
//! the request used with the meter, and stops at the next token when the client goes away.

use std::sync::Arc;

use substrate_models::{Llama, Sampling};

/// Holds back text that may be the start of a stop sequence, and says when one is met.
pub(crate) struct Stops {
    stops: Vec<String>,
    pending: String,
}

impl Stops {
    /// Takes `piece`; returns what may be shown now, and whether a stop sequence ended the text.
    fn push(&mut self, piece: &str) -> (String, bool) {
        self.pending.push_str(piece);
        if let Some(at) = self.stops.iter().filter_map(|s| self.pending.find(s.as_str())).min() {
            let shown = self.pending[..at].to_owned();
            self.pending.clear();
            return (shown, true);
        }
        // Keep the longest tail that is a prefix of some stop sequence.
        let keep = self
            .stops
            .iter()
            .flat_map(|s| (1..s.len()).rev().filter(|&n| s.is_char_boundary(n)).map(move |n| &s[..n]))
            .filter(|prefix| self.pending.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let split = self.pending.len() - keep;
        let shown = self.pending[..split].to_owned();
        self.pending.drain(..split);
        (shown, false)
    }

    fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

/// Generates on a thread of its own, holding `permit` until it ends: the text comes through the
/// receiver as it is made (held back where it may begin a stop sequence), then the end. When the
/// receiver is dropped (the client went away) the generation stops at the next token.
pub(crate) fn spawn_generation(
    model: Arc<Llama>,
    prompt: Vec<u32>,
    sampling: Sampling,
    stops: Vec<String>,
    permit: tokio::sync::OwnedSemaphorePermit,
    charge: crate::metering::Charge,
) -> std::io::Result<tokio::sync::mpsc::Receiver<Piece>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Piece>(64);
    let max_tokens = sampling.max_tokens;
    std::thread::Builder::new().name("generate".into()).spawn(move || {
        let _permit = permit;
        let mut stops = Stops { stops, pending: String::new() };
        let mut stopped_by_sequence = false;
        let generated = substrate_models::generate_while(&model, &prompt, &sampling, |piece| {
            let (shown, stop) = stops.push(piece);
            if stop {
                stopped_by_sequence = true;
            }
            let listening = shown.is_empty() || tx.blocking_send(Piece::Text(shown)).is_ok();
            listening && !stop
        });
        let end = match generated {
            Ok(generation) => {
                // What it used, also when the client went away part way.
                charge.settle((generation.prompt_tokens + generation.tokens.len()) as u64);
                let rest = if stopped_by_sequence { String::new() } else { stops.finish() };
                if !rest.is_empty() {
                    let _ = tx.blocking_send(Piece::Text(rest));
                }
                let finish = if stopped_by_sequence
                    || (generation.stopped && generation.tokens.len() < max_tokens)
                    || generation.tokens.last() == Some(&model.tokenizer.eos)
                {
                    "stop"
                } else {
                    "length"
                };
                Piece::End {
                    finish,
                    prompt_tokens: generation.prompt_tokens,
                    completion_tokens: generation.tokens.len(),
                    prompt_time: generation.prompt_time,
                    decode_time: generation.decode_time,
                }
            }
            Err(e) => Piece::Failed(e.to_string()),
        };
        let _ = tx.blocking_send(end);
    })?;
    Ok(rx)
}

/// What the generation thread hands the response: text as it comes, then the end.
pub(crate) enum Piece {
    Text(String),
    End {
        finish: &'static str,
        prompt_tokens: usize,
        completion_tokens: usize,
        prompt_time: std::time::Duration,
        decode_time: std::time::Duration,
    },
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::Stops;

    #[test]
    fn a_stop_sequence_split_across_pieces_is_held_back_and_cut() {
        let mut stops = Stops { stops: vec!["END".into()], pending: String::new() };
        assert_eq!(stops.push("the bread E"), ("the bread ".into(), false));
        assert_eq!(stops.push("N"), (String::new(), false));
        assert_eq!(stops.push("D and more"), (String::new(), true));
        let mut stops = Stops { stops: vec!["END".into()], pending: String::new() };
        assert_eq!(stops.push("E"), (String::new(), false));
        assert_eq!(stops.push("asy"), ("Easy".into(), false));
        assert_eq!(stops.finish(), "");
    }
}
