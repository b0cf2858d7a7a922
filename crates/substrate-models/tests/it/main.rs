//! Tests of substrate-models. The fast ones build tiny random models of the real architectures;
//! `reference` checks the real default models against llama.cpp and sentence-transformers and
//! is ignored unless asked for (`.ci/run` fetches the models and runs it).

#![allow(clippy::unwrap_used)]

mod embed;
mod errors;
mod finetune;
mod llama;
mod reference;
