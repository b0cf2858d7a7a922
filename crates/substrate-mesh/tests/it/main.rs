//! Integration tests of the mesh: several nodes in one process on 127.0.0.1.

mod replication;
mod verification;
