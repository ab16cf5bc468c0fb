//! The in-memory model of the layer tree being unpacked.
//!
//! The destination starts empty and only the unpacker writes to it, so the model knows every
//! entry on disk. It serves three purposes: resolving entry paths (symlinks included) inside
//! the root without asking the kernel, deciding what an entry replaces, and producing the tree
//! hash at the end without re-reading anything.

use std::collections::{BTreeMap, VecDeque};

use rkt_types::Digest;

use super::fsops::join;
use crate::treehash::{self, Kind, Record};

/// Linux's limit on symlinks followed while resolving one path.
const MAX_SYMLINK_HOPS: u32 = 40;

/// Index of an inode in [`Tree::nodes`]; hard links share one.
pub(crate) type NodeId = usize;

/// One inode of the tree.
pub(crate) struct Node {
    pub record: Record,
    /// Directories only: the mtime to stamp once all children are in place.
    pub mtime: Option<(i64, u32)>,
}

/// Why a path could not be resolved.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ResolveError {
    /// A component (given here, canonical) exists and is neither a directory nor a symlink.
    NotADirectory(Vec<u8>),
    /// More than 40 symlinks on the way.
    Loop,
    /// A missing component followed by `..` (from a symlink target): the kernel would fail on
    /// it, and creating the directory just to leave it again makes no sense.
    DotDotAfterMissing(Vec<u8>),
}

/// A resolved directory path.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The deepest existing directory, canonical (no symlinks, no `.`/`..`).
    pub existing: Vec<u8>,
    /// Components below `existing` that do not exist yet (plain names).
    pub missing: Vec<Vec<u8>>,
    /// A symlink on the way pointed outside the tree (an absolute target, or `..` above the
    /// root) and was resolved inside it instead: a lookup on the host would have escaped.
    pub clamped: bool,
}

/// Paths (canonical, relative to the root; the root is the empty path) and their inodes.
pub(crate) struct Tree {
    paths: BTreeMap<Vec<u8>, NodeId>,
    nodes: Vec<Node>,
}

impl Tree {
    /// A tree holding only its root directory.
    pub(crate) fn new(root: Record) -> Self {
        let mut t = Tree {
            paths: BTreeMap::new(),
            nodes: Vec::new(),
        };
        t.insert(Vec::new(), root);
        t
    }

    pub(crate) fn lookup(&self, path: &[u8]) -> Option<NodeId> {
        self.paths.get(path).copied()
    }

    pub(crate) fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    pub(crate) fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id]
    }

    pub(crate) fn kind_at(&self, path: &[u8]) -> Option<&Kind> {
        self.lookup(path).map(|id| &self.nodes[id].record.kind)
    }

    /// Adds a new inode at `path` (which must be free).
    pub(crate) fn insert(&mut self, path: Vec<u8>, record: Record) -> NodeId {
        let id = self.nodes.len();
        self.nodes.push(Node {
            record,
            mtime: None,
        });
        self.paths.insert(path, id);
        id
    }

    /// Adds `path` as another name of inode `id`.
    pub(crate) fn link(&mut self, path: Vec<u8>, id: NodeId) {
        self.paths.insert(path, id);
    }

    /// Forgets `path` itself (not its children).
    pub(crate) fn remove(&mut self, path: &[u8]) {
        self.paths.remove(path);
    }

    /// Strict descendants of `dir`, in ascending order (so parents before children).
    pub(crate) fn descendants(&self, dir: &[u8]) -> Vec<Vec<u8>> {
        if dir.is_empty() {
            return self
                .paths
                .keys()
                .filter(|p| !p.is_empty())
                .cloned()
                .collect();
        }
        // Everything below `dir/` sorts before `dir0`, since '0' is '/' + 1.
        let lo = join(dir, b"");
        let mut hi = lo.clone();
        if let Some(last) = hi.last_mut() {
            *last = b'/' + 1;
        }
        self.paths.range(lo..hi).map(|(p, _)| p.clone()).collect()
    }

    pub(crate) fn has_children(&self, dir: &[u8]) -> bool {
        if dir.is_empty() {
            return self.paths.len() > 1;
        }
        let lo = join(dir, b"");
        self.paths
            .range(lo.clone()..)
            .next()
            .is_some_and(|(p, _)| p.starts_with(&lo))
    }

    /// Directories, deepest first (reverse path order puts every child before its parent).
    pub(crate) fn dirs_deepest_first(&self) -> impl Iterator<Item = (&[u8], &Node)> {
        self.paths
            .iter()
            .rev()
            .map(|(p, &id)| (&p[..], &self.nodes[id]))
            .filter(|(_, n)| n.record.kind == Kind::Dir)
    }

    /// Resolves `comps` as a directory path the way `RESOLVE_IN_ROOT` would: symlinks are
    /// followed, absolute targets start again at the root and `..` never climbs above it.
    /// Components from the first missing one on are returned as `missing`.
    pub(crate) fn resolve_dir(&self, comps: &[&[u8]]) -> Result<Resolved, ResolveError> {
        let mut queue: VecDeque<Vec<u8>> = comps.iter().map(|c| c.to_vec()).collect();
        let mut cur: Vec<u8> = Vec::new();
        // Length of `cur` before each component, for `..`.
        let mut lens: Vec<usize> = Vec::new();
        let mut hops = 0;
        let mut clamped = false;
        while let Some(c) = queue.pop_front() {
            match &c[..] {
                b"" | b"." => continue,
                b".." => {
                    // Entry names are normalised, so every `..` here comes from a symlink.
                    match lens.pop() {
                        Some(l) => cur.truncate(l),
                        None => clamped = true,
                    }
                    continue;
                }
                _ => {}
            }
            let next = join(&cur, &c);
            match self.kind_at(&next) {
                Some(Kind::Dir) => {
                    lens.push(cur.len());
                    cur = next;
                }
                Some(Kind::Symlink(target)) => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(ResolveError::Loop);
                    }
                    if target.starts_with(b"/") {
                        cur.clear();
                        lens.clear();
                        clamped = true;
                    }
                    for part in target.split(|&b| b == b'/').rev() {
                        queue.push_front(part.to_vec());
                    }
                }
                Some(_) => return Err(ResolveError::NotADirectory(next)),
                None => {
                    let mut missing = vec![c];
                    for rest in queue {
                        match &rest[..] {
                            b"" | b"." => {}
                            b".." => return Err(ResolveError::DotDotAfterMissing(next)),
                            _ => missing.push(rest),
                        }
                    }
                    return Ok(Resolved {
                        existing: cur,
                        missing,
                        clamped,
                    });
                }
            }
        }
        Ok(Resolved {
            existing: cur,
            missing: Vec::new(),
            clamped,
        })
    }

    /// The tree hash of the model (see [`crate::treehash`]).
    pub(crate) fn digest(&self) -> Digest {
        treehash::digest(
            self.paths
                .iter()
                .map(|(p, &id)| (&p[..], &self.nodes[id].record, id as u64)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: Kind) -> Record {
        Record {
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            xattrs: Vec::new(),
        }
    }

    fn tree() -> Tree {
        let mut t = Tree::new(rec(Kind::Dir));
        t.insert(b"usr".to_vec(), rec(Kind::Dir));
        t.insert(b"usr/lib".to_vec(), rec(Kind::Dir));
        t.insert(b"lib".to_vec(), rec(Kind::Symlink(b"usr/lib".to_vec())));
        t.insert(b"up".to_vec(), rec(Kind::Symlink(b"../../../..".to_vec())));
        t.insert(b"abs".to_vec(), rec(Kind::Symlink(b"/usr".to_vec())));
        t.insert(b"loop".to_vec(), rec(Kind::Symlink(b"loop".to_vec())));
        let file = Kind::File {
            size: 0,
            sha256: [0; 32],
        };
        t.insert(b"usr/file".to_vec(), rec(file));
        t
    }

    fn r(t: &Tree, p: &str) -> Result<Resolved, ResolveError> {
        let comps: Vec<&[u8]> = p.split('/').map(str::as_bytes).collect();
        t.resolve_dir(&comps)
    }

    #[test]
    fn resolves_inside_the_root() {
        let t = tree();
        assert_eq!(r(&t, "lib").unwrap().existing, b"usr/lib");
        assert!(!r(&t, "lib").unwrap().clamped);
        assert_eq!(r(&t, "up").unwrap().existing, b"");
        assert!(r(&t, "up").unwrap().clamped);
        assert!(r(&t, "abs").unwrap().clamped);
        assert_eq!(r(&t, "up/usr").unwrap().existing, b"usr");
        assert_eq!(r(&t, "abs/lib").unwrap().existing, b"usr/lib");
        let m = r(&t, "abs/new/deeper").unwrap();
        assert_eq!(m.existing, b"usr");
        assert_eq!(m.missing, vec![b"new".to_vec(), b"deeper".to_vec()]);
        assert_eq!(r(&t, "loop"), Err(ResolveError::Loop));
        assert_eq!(
            r(&t, "usr/file/x"),
            Err(ResolveError::NotADirectory(b"usr/file".to_vec()))
        );
    }

    #[test]
    fn descendants_are_exact() {
        let mut t = tree();
        t.insert(b"usr0".to_vec(), rec(Kind::Dir));
        t.insert(b"usr.d".to_vec(), rec(Kind::Dir));
        assert_eq!(
            t.descendants(b"usr"),
            vec![b"usr/file".to_vec(), b"usr/lib".to_vec()]
        );
        assert!(t.has_children(b"usr"));
        assert!(!t.has_children(b"usr/lib"));
        assert!(!t.has_children(b"usr.d"));
    }
}
