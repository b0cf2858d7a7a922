//! The n-gram language model's commands (`lm train`, `lm score`) and the amputation audit's
//! arguments.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{DataArgs, LoraArgs};

#[derive(Subcommand, Debug)]
pub enum LmCommand {
    /// Train an n-gram language model (interpolated modified Kneser-Ney, as KenLM's lmplz) on
    /// text files, a sentence a line, and write it as an ARPA file.
    Train {
        /// Plain UTF-8 text files.
        #[arg(required = true)]
        corpus: Vec<PathBuf>,
        #[arg(long, default_value_t = 5)]
        order: usize,
        /// The ARPA file to write.
        #[arg(long)]
        out: PathBuf,
        /// `modified` (Kneser-Ney with three discounts per order), or `nltk:D` (NLTK's variant
        /// with one discount D, for cross-checks).
        #[arg(long, default_value = "modified")]
        smoothing: String,
        /// D1,D2,D3 for an order whose counts of counts cannot give discounts (lmplz's
        /// --discount_fallback); without it, such a corpus is refused.
        #[arg(long, value_delimiter = ',')]
        discount_fallback: Option<Vec<f64>>,
        #[command(flatten)]
        tokens: TokenArgs,
    },
    /// Score lines of standard input with an ARPA model: a JSON object a line, with each token's
    /// log10 probability and n-gram length (as KenLM's full_scores), the sum and the perplexity.
    Score {
        /// The ARPA file.
        model: PathBuf,
        #[command(flatten)]
        tokens: TokenArgs,
    },
}

/// How lines become tokens.
#[derive(Args, Debug, Clone, Copy)]
pub struct TokenArgs {
    /// Count and score each line as it is, without `<s>` before it and `</s>` after it (for text
    /// padded already).
    #[arg(long)]
    pub no_markers: bool,
    /// Split lines on white space only, without CCNet's normalisation and word cutting.
    #[arg(long)]
    pub raw_tokens: bool,
}

/// How CCNet's perplexity filter would treat the commons' eligible deposits, register by
/// register, and what training on what it keeps does to each register's held-out perplexity.
#[derive(Args, Debug)]
pub struct AmputationArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The reference corpus: a directory of .txt files (each a document), or a summaries file of
    /// the `wikipedia-summaries` package. Default: that package's summaries in `--language`,
    /// under the models directory (`substrate models fetch` puts it there).
    #[arg(long, conflicts_with = "reference_model")]
    pub reference: Option<PathBuf>,
    /// An ARPA model to use instead of training one.
    #[arg(long)]
    pub reference_model: Option<PathBuf>,
    /// The reference's language (en, es or fr for the default corpus). Deposits in other
    /// languages are reported apart, not scored.
    #[arg(long, default_value = "en")]
    pub language: String,
    /// Where `models fetch` put the reference package. Default: $SUBSTRATE_MODELS, else
    /// DATA_DIR/models.
    #[arg(long, env = "SUBSTRATE_MODELS")]
    pub models_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 5)]
    pub order: usize,
    /// The percentile of the sample's perplexities below which a text is in the head (CCNet: 30).
    #[arg(long, default_value_t = 30.0)]
    pub head_percentile: f64,
    /// The percentile at and above which a text is in the tail (CCNet: 60).
    #[arg(long, default_value_t = 60.0)]
    pub tail_percentile: f64,
    /// Fixed perplexity cutoffs HEAD,TAIL instead of percentiles of the sample.
    #[arg(long, value_delimiter = ',', value_name = "HEAD,TAIL")]
    pub cutoffs: Option<Vec<f64>>,
    /// Write the reference model trained as an ARPA file.
    #[arg(long)]
    pub save_model: Option<PathBuf>,
    /// Write the chart of each register's head, middle and tail as an SVG file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also answer it: train one adapter on what CCNet keeps (its head and middle, in their
    /// natural proportions) and one on the governed mixture over every eligible text, on the same
    /// base model and steps, and report each register's held-out perplexity under the base
    /// model and under each adapter. The adapters are written into this directory.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// The base model for --compare. Default: the default generation model.
    #[arg(long)]
    pub model: Option<String>,
    #[command(flatten)]
    pub lora: LoraArgs,
}
