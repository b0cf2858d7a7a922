//! RFC 6962 Merkle tree hashing, an append-only tree, and inclusion and
//! consistency proofs (generated per RFC 6962 2.1.1/2.1.2, verified per
//! RFC 9162 2.1.3.2/2.1.4.2).

use sha2::{Digest, Sha256};

use crate::Hash;

/// Errors from building or checking Merkle proofs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {size} is larger than the tree, which has {tree} leaves")]
    SizeOutOfRange { size: u64, tree: u64 },
    #[error("old tree size is larger than new tree size")]
    OldAfterNew,
    #[error("proof has {got} hashes, expected {expected}")]
    WrongLength { expected: usize, got: usize },
    #[error("proof does not lead to the expected root hash")]
    RootMismatch,
    #[error("consistency proof does not lead to the expected old root hash")]
    OldRootMismatch,
}

/// RFC 6962 leaf hash: SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// RFC 6962 interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The Merkle tree hash of the empty tree: SHA-256 of no bytes.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Largest power of two strictly smaller than `n` (the RFC 6962 split
/// point `k`). Requires `n >= 2`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// An append-only RFC 6962 Merkle tree that keeps every complete aligned
/// subtree hash, so roots and proofs for any earlier size need only
/// O(log n) stored hashes and no rehashing of leaves.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    /// `levels[k][i]` is the hash of leaves `i*2^k .. (i+1)*2^k`. Level `k`
    /// always holds exactly `size >> k` hashes.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_leaf_hashes(hashes: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Self::new();
        for h in hashes {
            tree.push(h);
        }
        tree
    }

    /// Appends a leaf hash. Each push completes on average one subtree per
    /// level below it, so the cost is amortised O(1) hashes.
    pub fn push(&mut self, leaf_hash: Hash) {
        let mut hash = leaf_hash;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(hash);
            // An odd count means the new hash has no sibling yet.
            if row.len() % 2 == 1 {
                return;
            }
            hash = node_hash(&row[row.len() - 2], &row[row.len() - 1]);
            level += 1;
        }
    }

    /// Drops every leaf from `size` on (no-op if the tree is not larger), so a caller can push a
    /// candidate range and take it back if it does not verify, without copying the tree.
    pub fn truncate(&mut self, size: u64) {
        for (level, row) in self.levels.iter_mut().enumerate() {
            let keep = usize::try_from(size >> level).unwrap_or(usize::MAX);
            row.truncate(keep);
        }
        while self.levels.last().is_some_and(Vec::is_empty) {
            self.levels.pop();
        }
    }

    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Number of complete subtree hashes stored at `level`.
    pub(crate) fn level_len(&self, level: u32) -> u64 {
        usize::try_from(level).ok().and_then(|l| self.levels.get(l)).map_or(0, |l| l.len() as u64)
    }

    /// The Merkle tree hash of all leaves.
    pub fn root(&self) -> Hash {
        // Every aligned subtree of the whole tree is stored, so this cannot
        // miss; the fallback only keeps the function total.
        self.range_hash(0, self.size()).unwrap_or_else(empty_root)
    }

    /// The Merkle tree hash of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        self.range_hash(0, size).ok_or(self.size_error(size))
    }

    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.stored_hash(0, index)
    }

    /// The hash of the complete subtree of `2^level` leaves starting at leaf
    /// `index << level`, if all those leaves exist.
    pub fn stored_hash(&self, level: u32, index: u64) -> Option<Hash> {
        let row = self.levels.get(usize::try_from(level).ok()?)?;
        row.get(usize::try_from(index).ok()?).copied()
    }

    /// RFC 6962 audit path for leaf `index` in the tree of the first `size`
    /// leaves, ordered from the leaf's sibling up to the root's child.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        let mut proof = Vec::new();
        self.path(index, 0, size, &mut proof).ok_or(self.size_error(size))?;
        Ok(proof)
    }

    /// RFC 6962 consistency proof between the trees of the first `old_size`
    /// and `new_size` leaves. Empty when the sizes are equal or `old_size`
    /// is 0, as every tree trivially extends those.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, ProofError> {
        if old_size > new_size {
            return Err(ProofError::OldAfterNew);
        }
        self.check_size(new_size)?;
        let mut proof = Vec::new();
        if old_size > 0 && old_size < new_size {
            self.subproof(old_size, 0, new_size, true, &mut proof).ok_or(self.size_error(new_size))?;
        }
        Ok(proof)
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        if size > self.size() {
            return Err(self.size_error(size));
        }
        Ok(())
    }

    fn size_error(&self, size: u64) -> ProofError {
        ProofError::SizeOutOfRange { size, tree: self.size() }
    }

    /// MTH of leaves `start .. start + len`, where `start` is a multiple of
    /// the largest power of two not exceeding `len` (true for every range
    /// RFC 6962 recursion produces). Such a range decomposes into stored
    /// subtrees of decreasing size; MTH nests them from the right.
    fn range_hash(&self, start: u64, len: u64) -> Option<Hash> {
        let mut pieces = Vec::new();
        let mut pos = start;
        let mut remaining = len;
        while remaining > 0 {
            let level = 63 - remaining.leading_zeros();
            pieces.push(self.stored_hash(level, pos >> level)?);
            pos += 1 << level;
            remaining -= 1 << level;
        }
        let mut acc = match pieces.pop() {
            Some(last) => last,
            None => return Some(empty_root()),
        };
        while let Some(left) = pieces.pop() {
            acc = node_hash(&left, &acc);
        }
        Some(acc)
    }

    /// RFC 6962 PATH(m, D[start .. start + n]), appended leaf-first.
    fn path(&self, m: u64, start: u64, n: u64, out: &mut Vec<Hash>) -> Option<()> {
        if n <= 1 {
            return Some(());
        }
        let k = split_point(n);
        if m < k {
            self.path(m, start, k, out)?;
            out.push(self.range_hash(start + k, n - k)?);
        } else {
            self.path(m - k, start + k, n - k, out)?;
            out.push(self.range_hash(start, k)?);
        }
        Some(())
    }

    /// RFC 6962 SUBPROOF(m, D[start .. start + n], complete).
    fn subproof(&self, m: u64, start: u64, n: u64, complete: bool, out: &mut Vec<Hash>) -> Option<()> {
        if m == n {
            if !complete {
                out.push(self.range_hash(start, n)?);
            }
            return Some(());
        }
        let k = split_point(n);
        if m <= k {
            self.subproof(m, start, k, complete, out)?;
            out.push(self.range_hash(start + k, n - k)?);
        } else {
            self.subproof(m - k, start + k, n - k, false, out)?;
            out.push(self.range_hash(start, k)?);
        }
        Some(())
    }
}

/// Length of the RFC 6962 audit path for `index < size`, so a proof of the
/// wrong length is reported as such rather than as a root mismatch.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let (mut m, mut n, mut len) = (index, size, 0);
    while n > 1 {
        let k = split_point(n);
        if m < k {
            n = k;
        } else {
            m -= k;
            n -= k;
        }
        len += 1;
    }
    len
}

/// Length of the RFC 6962 consistency proof for `0 < old < new`.
fn consistency_proof_len(old: u64, new: u64) -> usize {
    let (mut m, mut n, mut complete, mut len) = (old, new, true, 0);
    loop {
        if m == n {
            return len + usize::from(!complete);
        }
        let k = split_point(n);
        if m <= k {
            n = k;
        } else {
            m -= k;
            n -= k;
            complete = false;
        }
        len += 1;
    }
}

/// Checks that `proof` shows leaf hash `leaf` at `index` in the tree of
/// `size` leaves with root `root` (RFC 9162 2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongLength { expected, got: proof.len() });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongLength { expected, got: proof.len() });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            // Skip levels where this node is a lone right edge with no
            // sibling in the tree.
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 || r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `new_size` leaves with root `new_root` extends
/// the tree of `old_size` leaves with root `old_root` (RFC 9162 2.1.4.2).
/// An empty old tree is consistent with everything, given its root is the
/// empty root.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldAfterNew);
    }
    if old_size == 0 || old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength { expected: 0, got: proof.len() });
        }
        if old_size == 0 {
            if *old_root != empty_root() {
                return Err(ProofError::OldRootMismatch);
            }
        } else if old_root != new_root {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }
    let expected = consistency_proof_len(old_size, new_size);
    if proof.len() != expected {
        return Err(ProofError::WrongLength { expected, got: proof.len() });
    }
    // When the old tree is a complete subtree its root is the first node of
    // the path and the proof omits it.
    let mut path = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);

    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError::WrongLength { expected, got: proof.len() });
    };
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return Err(ProofError::WrongLength { expected, got: proof.len() });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sn != 0 || sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Hash {
        let bytes: Vec<u8> =
            (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
        bytes.try_into().unwrap()
    }

    /// The leaves of the certificate-transparency merkle_tree test suite.
    fn ct_leaves() -> Vec<Vec<u8>> {
        vec![
            vec![],
            vec![0x00],
            vec![0x10],
            vec![0x20, 0x21],
            vec![0x30, 0x31],
            vec![0x40, 0x41, 0x42, 0x43],
            (0x50..=0x57).collect(),
            (0x60..=0x6f).collect(),
        ]
    }

    fn ct_tree() -> Tree {
        Tree::from_leaf_hashes(ct_leaves().iter().map(|l| leaf_hash(l)))
    }

    /// Direct transcription of the RFC 6962 MTH definition.
    fn naive_mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&naive_mth(&leaves[..k]), &naive_mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn empty_tree() {
        let t = Tree::new();
        assert_eq!(t.size(), 0);
        assert_eq!(t.root(), hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
        assert_eq!(t.root_at(0), Ok(empty_root()));
        assert_eq!(t.root_at(1), Err(ProofError::SizeOutOfRange { size: 1, tree: 0 }));
        assert_eq!(t.leaf(0), None);
    }

    #[test]
    fn ct_roots() {
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let full = ct_tree();
        let mut growing = Tree::new();
        for (i, (leaf, root)) in ct_leaves().iter().zip(roots).enumerate() {
            growing.push(leaf_hash(leaf));
            assert_eq!(growing.root(), hex(root), "size {}", i + 1);
            assert_eq!(full.root_at(i as u64 + 1), Ok(hex(root)));
        }
        assert_eq!(full.root(), hex(roots[7]));
    }

    #[test]
    fn ct_inclusion_proofs() {
        let cases: [(u64, u64, &[&str]); 4] = [
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (2, 3, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        let t = ct_tree();
        for (index, size, want) in cases {
            let want: Vec<Hash> = want.iter().map(|h| hex(h)).collect();
            assert_eq!(t.inclusion_proof(index, size).unwrap(), want);
            let leaf = t.leaf(index).unwrap();
            verify_inclusion(&leaf, index, size, &want, &t.root_at(size).unwrap()).unwrap();
        }
    }

    #[test]
    fn ct_consistency_proofs() {
        let cases: [(u64, u64, &[&str]); 3] = [
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        let t = ct_tree();
        for (old, new, want) in cases {
            let want: Vec<Hash> = want.iter().map(|h| hex(h)).collect();
            assert_eq!(t.consistency_proof(old, new).unwrap(), want);
            let (old_root, new_root) = (t.root_at(old).unwrap(), t.root_at(new).unwrap());
            verify_consistency(old, new, &old_root, &new_root, &want).unwrap();
        }
    }

    #[test]
    fn proof_argument_errors() {
        let t = ct_tree();
        assert_eq!(t.inclusion_proof(8, 8), Err(ProofError::IndexOutOfRange { index: 8, size: 8 }));
        assert_eq!(t.inclusion_proof(0, 9), Err(ProofError::SizeOutOfRange { size: 9, tree: 8 }));
        assert_eq!(t.consistency_proof(5, 4), Err(ProofError::OldAfterNew));
        assert_eq!(t.consistency_proof(5, 9), Err(ProofError::SizeOutOfRange { size: 9, tree: 8 }));
        assert_eq!(t.consistency_proof(0, 8), Ok(vec![]));
        assert_eq!(t.consistency_proof(8, 8), Ok(vec![]));

        let root = t.root();
        let leaf = t.leaf(0).unwrap();
        assert_eq!(
            verify_inclusion(&leaf, 0, 0, &[], &root),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            verify_inclusion(&leaf, 0, 8, &[], &root),
            Err(ProofError::WrongLength { expected: 3, got: 0 })
        );
        let old = t.root_at(3).unwrap();
        assert_eq!(verify_consistency(4, 3, &old, &root, &[]), Err(ProofError::OldAfterNew));
        assert_eq!(verify_consistency(0, 8, &empty_root(), &root, &[]), Ok(()));
        assert_eq!(verify_consistency(0, 8, &old, &root, &[]), Err(ProofError::OldRootMismatch));
        assert_eq!(verify_consistency(8, 8, &root, &root, &[]), Ok(()));
        assert_eq!(verify_consistency(8, 8, &old, &root, &[]), Err(ProofError::RootMismatch));
        assert_eq!(
            verify_consistency(8, 8, &root, &root, &[root]),
            Err(ProofError::WrongLength { expected: 0, got: 1 })
        );
    }

    #[test]
    fn stored_hashes() {
        let t = ct_tree();
        let leaves: Vec<Hash> = ct_leaves().iter().map(|l| leaf_hash(l)).collect();
        assert_eq!(t.stored_hash(0, 7), Some(leaves[7]));
        assert_eq!(t.stored_hash(1, 1), Some(naive_mth(&leaves[2..4])));
        assert_eq!(t.stored_hash(3, 0), Some(t.root()));
        assert_eq!(t.stored_hash(3, 1), None);
        assert_eq!(t.stored_hash(4, 0), None);
        assert_eq!(t.stored_hash(0, 8), None);
        assert_eq!(t.level_len(2), 2);
        assert_eq!(t.level_len(9), 0);
    }

    fn leaves_strategy() -> impl Strategy<Value = Vec<Hash>> {
        (1usize..600, any::<u64>()).prop_map(|(n, seed)| {
            (0..n as u64).map(|i| leaf_hash(&[seed.to_le_bytes(), i.to_le_bytes()].concat())).collect()
        })
    }

    fn flip(h: &Hash) -> Hash {
        let mut h = *h;
        h[0] ^= 1;
        h
    }

    /// Checks root_at against the RFC definition for every prefix, then
    /// every inclusion and consistency proof at each of `sizes`, including
    /// that tampering with any input makes verification fail.
    fn check_all_proofs(leaves: &[Hash], sizes: &[u64]) -> Result<(), TestCaseError> {
        let tree = Tree::from_leaf_hashes(leaves.iter().copied());
        let n = leaves.len() as u64;
        prop_assert_eq!(tree.size(), n);
        prop_assert_eq!(tree.root(), naive_mth(leaves));
        for m in 0..=n {
            prop_assert_eq!(tree.root_at(m).unwrap(), naive_mth(&leaves[..m as usize]));
        }
        let roots: Vec<Hash> = (0..=n).map(|m| tree.root_at(m).unwrap()).collect();
        for &size in sizes {
            let root = roots[size as usize];
            for index in 0..size {
                let leaf = leaves[index as usize];
                let proof = tree.inclusion_proof(index, size).unwrap();
                prop_assert_eq!(verify_inclusion(&leaf, index, size, &proof, &root), Ok(()));
                prop_assert!(verify_inclusion(&leaf, index, size, &proof, &flip(&root)).is_err());
                prop_assert!(verify_inclusion(&flip(&leaf), index, size, &proof, &root).is_err());
                if size > 1 {
                    let wrong = (index + 1) % size;
                    prop_assert!(verify_inclusion(&leaf, wrong, size, &proof, &root).is_err());
                }
                for i in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[i] = flip(&bad[i]);
                    prop_assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
                }
            }
            for old in 0..=size {
                let (old_root, new_root) = (roots[old as usize], root);
                let proof = tree.consistency_proof(old, size).unwrap();
                prop_assert_eq!(verify_consistency(old, size, &old_root, &new_root, &proof), Ok(()));
                prop_assert!(verify_consistency(old, size, &flip(&old_root), &new_root, &proof).is_err());
                if old > 0 {
                    prop_assert!(verify_consistency(old, size, &old_root, &flip(&new_root), &proof).is_err());
                }
                // Claiming a different old size with the same proof fails.
                for other_old in [old.wrapping_sub(1), old + 1] {
                    if old > 0 && other_old > 0 && other_old < size && other_old != old {
                        prop_assert!(
                            verify_consistency(other_old, size, &old_root, &new_root, &proof).is_err()
                        );
                    }
                }
                for i in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[i] = flip(&bad[i]);
                    prop_assert!(verify_consistency(old, size, &old_root, &new_root, &bad).is_err());
                }
            }
        }
        Ok(())
    }

    /// Every size of a small tree, so edge shapes never depend on luck.
    #[test]
    fn all_proofs_of_small_trees() {
        let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let sizes: Vec<u64> = (1..=70).collect();
        check_all_proofs(&leaves, &sizes).unwrap();
    }

    proptest! {
        // Each case checks thousands of proofs, so few cases go a long way.
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn proofs_verify_and_tampering_fails(
            leaves in leaves_strategy(),
            pick in any::<prop::sample::Index>(),
        ) {
            let other = pick.index(leaves.len()) as u64 + 1;
            check_all_proofs(&leaves, &[leaves.len() as u64, other])?;
        }

        #[test]
        fn a_truncated_tree_is_the_tree_of_its_prefix(
            leaves in leaves_strategy(),
            pick in any::<prop::sample::Index>(),
        ) {
            let keep = pick.index(leaves.len() + 1);
            let mut tree = Tree::from_leaf_hashes(leaves.iter().copied());
            tree.truncate(keep as u64);
            let prefix = Tree::from_leaf_hashes(leaves[..keep].iter().copied());
            prop_assert_eq!(&tree.levels, &prefix.levels);
            tree.push(leaves[0]);
            let mut longer = prefix.clone();
            longer.push(leaves[0]);
            prop_assert_eq!(tree.root(), longer.root());
        }
    }
}
