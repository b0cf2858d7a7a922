//! The C2SP tlog-tiles read endpoints, checked by rebuilding the tree from what they serve.

use std::io::Read;

use substrate_tlog::{Checkpoint, Tree, leaf_hash};

use crate::util::{Commons, new_key, signed_deposit, text};

/// GETs raw bytes; returns the status and body.
fn fetch(base: &str, path: &str) -> (u16, Vec<u8>) {
    let response = match ureq::get(&format!("{base}{path}")).call() {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("GET {path}: {e}"),
    };
    let status = response.status();
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body).expect("read body");
    (status, body)
}

/// Splits an entry bundle into its entries (big-endian u16 length prefixes).
fn bundle_entries(mut bundle: &[u8]) -> Vec<Vec<u8>> {
    let mut entries = Vec::new();
    while !bundle.is_empty() {
        let length = u16::from_be_bytes([bundle[0], bundle[1]]) as usize;
        entries.push(bundle[2..2 + length].to_vec());
        bundle = &bundle[2 + length..];
    }
    entries
}

#[test]
fn tiles_rebuild_the_checkpointed_tree() {
    let commons = Commons::init("tiles");
    let daemon = commons.start();
    let http = daemon.http();
    let alice = new_key();
    // 260 deposits after the genesis: one full tile of 256 leaves and a partial one of 5.
    for n in 0..260 {
        let story = text(&format!("tile text {n}"), 64);
        http.deposit(&signed_deposit(&alice, &story), &story);
    }
    let (status, note) = fetch(&daemon.url, "/checkpoint");
    assert_eq!(status, 200);
    let checkpoint =
        Checkpoint::open(&String::from_utf8(note).expect("utf-8"), &commons.verifier()).expect("signed");
    assert_eq!(checkpoint.size, 261);

    let (status, full) = fetch(&daemon.url, "/tile/entries/000");
    assert_eq!(status, 200);
    let (status, partial) = fetch(&daemon.url, "/tile/entries/001.p/5");
    assert_eq!(status, 200);
    let leaves: Vec<Vec<u8>> = bundle_entries(&full).into_iter().chain(bundle_entries(&partial)).collect();
    assert_eq!(leaves.len(), 261);
    let tree = Tree::from_leaf_hashes(leaves.iter().map(|leaf| leaf_hash(leaf)));
    assert_eq!(tree.root(), checkpoint.root, "the entries served rebuild the signed root");

    let (status, level0) = fetch(&daemon.url, "/tile/0/000");
    assert_eq!(status, 200);
    let expected: Vec<u8> = (0..256).flat_map(|i| tree.leaf(i).expect("leaf")).collect();
    assert_eq!(level0, expected);
    let (status, level0_partial) = fetch(&daemon.url, "/tile/0/001.p/5");
    assert_eq!(status, 200);
    assert_eq!(level0_partial.len(), 5 * 32);
    let (status, level1) = fetch(&daemon.url, "/tile/1/000.p/1");
    assert_eq!(status, 200);
    assert_eq!(
        level1,
        tree.root_at(256).expect("root of 256").to_vec(),
        "a level-1 hash is a 256-leaf subtree"
    );

    for missing in
        ["/tile/0/002", "/tile/0/001", "/tile/0/001.p/6", "/tile/entries/001", "/tile/0/x", "/tile/9/000"]
    {
        let (status, body) = fetch(&daemon.url, missing);
        assert_eq!(status, 404, "{missing}: {}", String::from_utf8_lossy(&body));
    }
}
