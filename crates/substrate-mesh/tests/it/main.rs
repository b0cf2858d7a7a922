//! Integration tests of the mesh: several nodes in one process on 127.0.0.1: replication,
//! verification, partitions and consent on the wire.

mod faults;
mod replication;
mod verification;
