//! C2SP tlog-tiles (c2sp.org/tlog-tiles): tile paths, hash tiles and entry
//! bundles, with tiles of height 8 (256 hashes wide).

use std::fmt;

use crate::merkle::Tree;

/// Number of tree levels one tile spans.
pub const TILE_HEIGHT: u32 = 8;
/// Number of hashes in a full tile.
pub const TILE_WIDTH: u64 = 256;

/// Highest tile level a path may name, per the spec.
const MAX_TILE_LEVEL: u32 = 63;

/// Errors from parsing tile paths and building tiles or entry bundles.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TileError {
    #[error("malformed tile path {path:?}: {reason}")]
    MalformedPath { path: String, reason: String },
    #[error("partial tile width {width} is not between 1 and 255")]
    InvalidWidth { width: u64 },
    #[error("tile {level}/{index} of width {width} is not available: the tree has {available} of its hashes")]
    NotAvailable { level: u32, index: u64, width: u64, available: u64 },
    #[error("entry {index} is {len} bytes, more than the 65535 an entry bundle can hold")]
    EntryTooLarge { index: usize, len: usize },
}

/// A parsed tile resource path (the part after `tile/`).
#[derive(Debug, PartialEq, Eq)]
pub enum TilePath {
    /// `<level>/<index>[.p/<width>]`: Merkle tree hashes.
    Hashes { level: u32, index: u64, width: Option<u64> },
    /// `entries/<index>[.p/<width>]`: an entry bundle.
    Entries { index: u64, width: Option<u64> },
}

impl fmt::Display for TilePath {
    /// Formats the canonical path, the inverse of [`parse_tile_path`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (index, width) = match self {
            Self::Hashes { level, index, width } => {
                write!(f, "{level}/")?;
                (index, width)
            }
            Self::Entries { index, width } => {
                f.write_str("entries/")?;
                (index, width)
            }
        };
        f.write_str(&tile_index_path(*index))?;
        if let Some(w) = width {
            write!(f, ".p/{w}")?;
        }
        Ok(())
    }
}

/// Encodes a tile index as 3-digit path elements, all but the last
/// prefixed with `x`: 1234067 becomes `x001/x234/067`.
pub fn tile_index_path(index: u64) -> String {
    let mut groups = vec![format!("{:03}", index % 1000)];
    let mut rest = index / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// Parses the part of a tile URL after `tile/`, such as `0/x001/234`,
/// `1/000.p/17` or `entries/x002/045.p/3`. Only the canonical spelling of
/// each path is accepted, so every tile has a single URL.
pub fn parse_tile_path(path: &str) -> Result<TilePath, TileError> {
    let malformed =
        |reason: &str| TileError::MalformedPath { path: path.to_owned(), reason: reason.to_owned() };
    let (kind, rest) =
        path.split_once('/').ok_or_else(|| malformed("expected <level>/<index> or entries/<index>"))?;
    let (index_part, width) = match rest.split_once(".p/") {
        Some((index_part, w)) => {
            let w = parse_small_decimal(w)
                .filter(|w| (1..TILE_WIDTH).contains(w))
                .ok_or_else(|| malformed("partial width must be a decimal from 1 to 255"))?;
            (index_part, Some(w))
        }
        None => (rest, None),
    };
    let index = parse_index(index_part)
        .ok_or_else(|| malformed("index must be 3-digit groups, all but the last prefixed with 'x'"))?;
    if kind == "entries" {
        return Ok(TilePath::Entries { index, width });
    }
    let level = parse_small_decimal(kind)
        .and_then(|l| u32::try_from(l).ok())
        .filter(|l| *l <= MAX_TILE_LEVEL)
        .ok_or_else(|| malformed("level must be 'entries' or a decimal from 0 to 63"))?;
    Ok(TilePath::Hashes { level, index, width })
}

/// A short decimal without leading zeros; the length cap keeps the
/// arithmetic from overflowing on hostile input.
fn parse_small_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

fn parse_index(s: &str) -> Option<u64> {
    let mut groups = s.split('/').peekable();
    let mut index: u64 = 0;
    while let Some(group) = groups.next() {
        let digits = if groups.peek().is_some() { group.strip_prefix('x')? } else { group };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let value: u64 = digits.parse().ok()?;
        index = index.checked_mul(1000)?.checked_add(value)?;
    }
    // Rejects leading zero groups such as `x000/001`.
    (tile_index_path(index) == s).then_some(index)
}

/// Concatenated 32-byte hashes of the tile: tree level = level*8, nodes
/// index*256 .. index*256+width (width = 256 when None). Error if that tile
/// (or partial width) is not available in `tree` (must be full for None; a
/// partial width must be 1..=255 and exactly available).
///
/// A partial width is served whenever the tree holds at least that many
/// hashes of the tile, because the spec requires logs to keep serving the
/// partial tiles of sizes they published checkpoints for, even after the
/// tile has grown.
pub fn tile_hashes(tree: &Tree, level: u32, index: u64, width: Option<u64>) -> Result<Vec<u8>, TileError> {
    let width = match width {
        None => TILE_WIDTH,
        Some(w) if (1..TILE_WIDTH).contains(&w) => w,
        Some(w) => return Err(TileError::InvalidWidth { width: w }),
    };
    let tree_level = level.checked_mul(TILE_HEIGHT);
    let stored = tree_level.map_or(0, |l| tree.level_len(l));
    let start = index.checked_mul(TILE_WIDTH);
    let available = start.map_or(0, |s| stored.saturating_sub(s).min(TILE_WIDTH));
    let not_available = || TileError::NotAvailable { level, index, width, available };
    let (Some(tree_level), Some(start)) = (tree_level, start) else {
        return Err(not_available());
    };
    if available < width {
        return Err(not_available());
    }
    let mut out = Vec::with_capacity(32 * width as usize);
    for i in start..start + width {
        // Cannot miss after the availability check; kept total anyway.
        let hash = tree.stored_hash(tree_level, i).ok_or_else(not_available)?;
        out.extend_from_slice(&hash);
    }
    Ok(out)
}

/// Encodes entries as a tlog-tiles entry bundle: each entry as a big-endian
/// u16 length followed by its bytes.
pub fn entry_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, TileError> {
    let mut out = Vec::new();
    for (index, entry) in entries.into_iter().enumerate() {
        let len =
            u16::try_from(entry.len()).map_err(|_| TileError::EntryTooLarge { index, len: entry.len() })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::merkle::{leaf_hash, node_hash};

    #[test]
    fn index_paths() {
        assert_eq!(tile_index_path(0), "000");
        assert_eq!(tile_index_path(7), "007");
        assert_eq!(tile_index_path(999), "999");
        assert_eq!(tile_index_path(1000), "x001/000");
        assert_eq!(tile_index_path(1234067), "x001/x234/067");
        assert_eq!(tile_index_path(u64::MAX), "x018/x446/x744/x073/x709/x551/615");
    }

    #[test]
    fn parse_valid_paths() {
        let hashes = |level, index, width| TilePath::Hashes { level, index, width };
        let cases = [
            ("0/000", hashes(0, 0, None)),
            ("0/x001/234", hashes(0, 1234, None)),
            ("1/000.p/17", hashes(1, 0, Some(17))),
            ("63/999.p/255", hashes(63, 999, Some(255))),
            ("2/x001/x234/067.p/1", hashes(2, 1234067, Some(1))),
            ("entries/x002/045.p/3", TilePath::Entries { index: 2045, width: Some(3) }),
            ("entries/123", TilePath::Entries { index: 123, width: None }),
            ("0/x018/x446/x744/x073/x709/x551/615", hashes(0, u64::MAX, None)),
        ];
        for (path, want) in cases {
            let got = parse_tile_path(path).unwrap();
            assert_eq!(got.to_string(), path);
            assert_eq!(got, want, "{path}");
        }
    }

    #[test]
    fn parse_invalid_paths() {
        for path in [
            "",
            "0",
            "0/",
            "00/000",
            "01/000",
            "64/000",
            "-1/000",
            "a/000",
            "0/00",
            "0/0000",
            "0/1",
            "0/x000",
            "0/x000/001",
            "0/001/234",
            "0/x001/x234",
            "0/X001/234",
            "0/x01/234",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/017",
            "0/000.p/",
            "0/000.p",
            "0/000.p/1/2",
            "0/000/",
            "/000",
            "entries/",
            "entries/00a",
            "entry/000",
            "tile/0/000",
            "0/x018/x446/x744/x073/x709/x551/616",
            "0/x999/x999/x999/x999/x999/x999/x999/999",
        ] {
            assert!(
                matches!(parse_tile_path(path), Err(TileError::MalformedPath { .. })),
                "{path}: {:?}",
                parse_tile_path(path)
            );
        }
    }

    #[test]
    fn tiles_of_a_1000_leaf_tree() {
        let leaves: Vec<_> = (0..1000u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let tree = Tree::from_leaf_hashes(leaves.iter().copied());

        let full = tile_hashes(&tree, 0, 0, None).unwrap();
        assert_eq!(full, leaves[..256].concat());
        assert_eq!(tile_hashes(&tree, 0, 3, Some(232)).unwrap(), leaves[768..].concat());
        // A narrower partial tile from an earlier checkpoint is still served.
        assert_eq!(tile_hashes(&tree, 0, 3, Some(10)).unwrap(), leaves[768..778].concat());
        assert_eq!(
            tile_hashes(&tree, 0, 3, None),
            Err(TileError::NotAvailable { level: 0, index: 3, width: 256, available: 232 })
        );
        assert!(tile_hashes(&tree, 0, 3, Some(233)).is_err());
        assert!(tile_hashes(&tree, 0, 4, Some(1)).is_err());

        // Level 1 holds the roots of the three full level-0 tiles.
        let level1 = tile_hashes(&tree, 1, 0, Some(3)).unwrap();
        assert_eq!(level1.len(), 3 * 32);
        for (i, chunk) in level1.chunks(32).enumerate() {
            let sub = Tree::from_leaf_hashes(leaves[i * 256..(i + 1) * 256].iter().copied());
            assert_eq!(chunk, sub.root());
        }
        assert_eq!(&level1[..32], tree.stored_hash(8, 0).unwrap());
        assert!(tile_hashes(&tree, 1, 0, Some(4)).is_err());
        assert!(tile_hashes(&tree, 1, 0, None).is_err());
        assert!(tile_hashes(&tree, 2, 0, Some(1)).is_err());
        assert!(tile_hashes(&tree, 8, 0, Some(1)).is_err());
        assert!(tile_hashes(&tree, u32::MAX, u64::MAX, None).is_err());
        assert_eq!(tile_hashes(&tree, 0, 0, Some(0)), Err(TileError::InvalidWidth { width: 0 }));
        assert_eq!(tile_hashes(&tree, 0, 0, Some(256)), Err(TileError::InvalidWidth { width: 256 }));

        // Level 0 hashes of a tile rebuild its level 1 entry.
        let mut level: Vec<_> = leaves[..256].to_vec();
        while level.len() > 1 {
            level = level.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
        }
        assert_eq!(level[0], tree.stored_hash(8, 0).unwrap());
    }

    #[test]
    fn entry_bundles() {
        let entries: [&[u8]; 3] = [b"", b"ab", &[7; 300]];
        let bundle = entry_bundle(entries).unwrap();
        let mut want = vec![0, 0, 0, 2, b'a', b'b', 1, 44];
        want.extend_from_slice(&[7; 300]);
        assert_eq!(bundle, want);
        assert_eq!(entry_bundle(std::iter::empty::<&[u8]>()), Ok(vec![]));
        let max = vec![0u8; 65535];
        assert_eq!(entry_bundle([max.as_slice()]).unwrap().len(), 65537);
        let big = vec![0u8; 65536];
        assert_eq!(
            entry_bundle([b"x".as_slice(), big.as_slice()]),
            Err(TileError::EntryTooLarge { index: 1, len: 65536 })
        );
    }
}
