//! Tests of substrate-models. The fast ones build tiny random models of the real architectures;
//! the `reference` target (`tests/reference.rs`) checks the real default models against
//! llama.cpp and sentence-transformers.

#![allow(clippy::unwrap_used)]

mod embed;
mod errors;
mod finetune;
mod llama;
