//! Merkle trees of RFC 9162 (Certificate Transparency 2.0, §2.1): the verifiable data structure
//! `RFC9162_SHA256` of COSE Receipts (RFC 9942), which batched verification receipts use.
//!
//! Leaf hash `SHA-256(0x00 || data)`, node hash `SHA-256(0x01 || left || right)`; the tree over
//! `n` leaves splits at the largest power of two below `n`. Built bottom up, pairing neighbours
//! and carrying an odd last node up unchanged, gives the same tree (a test checks it against the
//! recursive definition of RFC 9162 §2.1.1 and §2.1.3.1).

use ring::digest::{Context, SHA256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

fn hash_parts(prefix: u8, parts: &[&[u8]]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[prefix]);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The hash of a leaf holding `data`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    hash_parts(0x00, &[data])
}

/// The hash of an inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    hash_parts(0x01, &[left, right])
}

/// A tree over leaf hashes, every level kept, for inclusion paths.
#[derive(Debug, Clone)]
pub struct Tree {
    /// `levels[0]` are the leaves, the last level holds the root alone.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// The tree over `leaves` (at least one).
    pub fn new(leaves: Vec<Hash>) -> Option<Tree> {
        if leaves.is_empty() {
            return None;
        }
        let mut levels = vec![leaves];
        while let Some(last) = levels.last()
            && last.len() > 1
        {
            let next = last
                .chunks(2)
                .map(|pair| match pair {
                    [l, r] => node_hash(l, r),
                    [odd] => *odd,
                    _ => [0u8; 32],
                })
                .collect();
            levels.push(next);
        }
        Some(Tree { levels })
    }

    pub fn size(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    pub fn root(&self) -> Hash {
        self.levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or([0u8; 32])
    }

    /// The inclusion path of leaf `index` (RFC 9162 §2.1.3.1), leaf side first.
    pub fn path(&self, index: usize) -> Vec<Hash> {
        let mut out = Vec::new();
        let mut i = index;
        for level in &self.levels {
            if level.len() <= 1 {
                break;
            }
            let sibling = i ^ 1;
            if let Some(h) = level.get(sibling) {
                out.push(*h);
            }
            i /= 2;
        }
        out
    }
}

/// The root an inclusion path leads to from `leaf` at `index` in a tree of `size` leaves
/// (RFC 9162 §2.1.3.2); `None` when the path cannot belong to such a tree.
pub fn root_from_path(index: u64, size: u64, leaf: &Hash, path: &[Hash]) -> Option<Hash> {
    if index >= size {
        return None;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(r)
}

/// [`root_from_path`] for a tree whose size is a power of two, as batched receipts use: the size
/// must be `2^len(path)`. In a tree of any other size, some other claimed size leads to the same
/// root over the same path (a tree of 3 and of 4 leaves share leaf 0's path shape), so a changed
/// size byte would go unnoticed; with padded trees every size but one is refused.
pub fn root_from_perfect_path(index: u64, size: u64, leaf: &Hash, path: &[Hash]) -> Option<Hash> {
    let expected = u32::try_from(path.len())
        .ok()
        .and_then(|n| 1u64.checked_shl(n))?;
    if size != expected {
        return None;
    }
    root_from_path(index, size, leaf, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MTH of RFC 9162 §2.1.1, recursively.
    fn mth(d: &[Hash]) -> Hash {
        match d.len() {
            1 => d[0],
            n => {
                let k = split(n);
                node_hash(&mth(&d[..k]), &mth(&d[k..]))
            }
        }
    }

    /// The largest power of two smaller than `n`.
    fn split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    /// PATH of RFC 9162 §2.1.3.1, recursively.
    fn path_def(m: usize, d: &[Hash]) -> Vec<Hash> {
        if d.len() == 1 {
            return Vec::new();
        }
        let k = split(d.len());
        if m < k {
            let mut p = path_def(m, &d[..k]);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = path_def(m - k, &d[k..]);
            p.push(mth(&d[..k]));
            p
        }
    }

    #[test]
    fn matches_the_recursive_definition_and_verifies() {
        for n in 1..=70usize {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
            let t = Tree::new(leaves.clone()).unwrap();
            assert_eq!(t.size(), n);
            assert_eq!(t.root(), mth(&leaves), "root of {n}");
            for (m, leaf) in leaves.iter().enumerate() {
                let p = t.path(m);
                assert_eq!(p, path_def(m, &leaves), "path {m} of {n}");
                let (m64, n64) = (m as u64, n as u64);
                assert_eq!(root_from_path(m64, n64, leaf, &p), Some(t.root()));
                // The wrong place, size, leaf or path does not lead to the root.
                if n > 1 {
                    let other = (m + 1) % n;
                    assert_ne!(root_from_path(other as u64, n64, leaf, &p), Some(t.root()));
                    assert_ne!(root_from_path(m64, n64, &leaves[other], &p), Some(t.root()));
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert_ne!(root_from_path(m64, n64, leaf, &bad), Some(t.root()));
                    assert_ne!(root_from_path(m64, n64, leaf, &p[1..]), Some(t.root()));
                }
                assert_eq!(root_from_path(n64, n64, leaf, &p), None);
            }
        }
        assert!(Tree::new(Vec::new()).is_none());
    }

    /// In a tree of a power-of-two size, the size, the index and the path are the only ones
    /// that lead to the root.
    #[test]
    fn perfect_trees_admit_one_size_and_one_index() {
        for k in 0..=6u32 {
            let n = 1usize << k;
            let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
            let t = Tree::new(leaves.clone()).unwrap();
            for (m, leaf) in leaves.iter().enumerate() {
                let p = t.path(m);
                assert_eq!(
                    root_from_perfect_path(m as u64, n as u64, leaf, &p),
                    Some(t.root())
                );
                for size in 0..=(2 * n as u64 + 2) {
                    if size != n as u64 {
                        assert_eq!(root_from_perfect_path(m as u64, size, leaf, &p), None);
                    }
                }
                for other in 0..(2 * n as u64) {
                    if other != m as u64 {
                        assert_ne!(
                            root_from_perfect_path(other, n as u64, leaf, &p),
                            Some(t.root()),
                            "leaf {m} at {other} of {n}"
                        );
                    }
                }
            }
        }
    }

    /// RFC 9162's leaf and node prefixes, checked against a hash computed by hand.
    #[test]
    fn leaf_and_node_prefixes() {
        let empty_leaf = leaf_hash(b"");
        assert_eq!(
            hex::encode(empty_leaf),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        let n = node_hash(&empty_leaf, &empty_leaf);
        let mut manual = vec![1u8];
        manual.extend_from_slice(&empty_leaf);
        manual.extend_from_slice(&empty_leaf);
        assert_eq!(
            n.as_slice(),
            ring::digest::digest(&SHA256, &manual).as_ref()
        );
    }
}
