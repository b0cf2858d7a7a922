//! tlog-tiles resource paths as the API's tile handlers receive them (the part after `tile/`):
//! `parse_tile_path`, then the hash tile or entry bundle it names from a tree of 773 leaves.
//!
//! Only the canonical spelling of a path parses (it prints back as given); a hash tile served is
//! its width in hashes, each the tree's own; an entry bundle reads back as its entries.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use substrate_tlog::{
    TILE_HEIGHT, TILE_WIDTH, TilePath, Tree, entry_bundle, leaf_hash, parse_tile_path, tile_hashes,
};

/// Three full tiles at level 0 and five leaves more: a partial tile at levels 0 and 1.
const LEAVES: u64 = 3 * TILE_WIDTH + 5;

static ENTRIES: LazyLock<Vec<Vec<u8>>> =
    LazyLock::new(|| (0..LEAVES).map(|i| format!("entry {i}").into_bytes()).collect());
static TREE: LazyLock<Tree> = LazyLock::new(|| Tree::from_leaf_hashes(ENTRIES.iter().map(|e| leaf_hash(e))));

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else { return };
    let Ok(tile) = parse_tile_path(path) else { return };
    assert_eq!(tile.to_string(), path, "a tile path with two spellings");
    match tile {
        TilePath::Hashes { level, index, width } => {
            let Ok(hashes) = tile_hashes(&TREE, level, index, width) else { return };
            let width = width.unwrap_or(TILE_WIDTH);
            assert_eq!(hashes.len() as u64, 32 * width);
            for (i, hash) in hashes.chunks_exact(32).enumerate() {
                let stored = TREE.stored_hash(level * TILE_HEIGHT, index * TILE_WIDTH + i as u64);
                assert_eq!(stored.as_ref().map(|h| &h[..]), Some(hash));
            }
        }
        TilePath::Entries { index, width } => {
            let start = index.saturating_mul(TILE_WIDTH);
            let end = start.saturating_add(width.unwrap_or(TILE_WIDTH)).min(LEAVES);
            let Some(entries) = ENTRIES.get(start as usize..end as usize) else { return };
            let bundle = entry_bundle(entries.iter().map(Vec::as_slice)).expect("small entries bundle");
            let mut rest = bundle.as_slice();
            for entry in entries {
                let (length, tail) = rest.split_at(2);
                let length = u16::from_be_bytes([length[0], length[1]]) as usize;
                assert_eq!(&tail[..length], entry.as_slice());
                rest = &tail[length..];
            }
            assert!(rest.is_empty());
        }
    }
});
