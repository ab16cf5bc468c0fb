//! Giving back the page-table entries of clean, read-only file mappings (the program's code
//! and constants) when a long-lived process goes idle.
//!
//! stage1 and the pod's supervisor wait for the whole life of a pod, but their resident size
//! is mostly the code they ran while starting it, mapped in 64 KiB windows around every page
//! they touched. `MADV_DONTNEED` on a private file mapping that holds no copied-on-write page
//! only unmaps page-cache pages: the next access maps the same bytes again from the file, so
//! nothing changes but the resident (and proportional) size.

/// A mapping of `/proc/self/smaps` that may be given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Clean {
    start: usize,
    end: usize,
}

/// The private, non-writable, file-backed mappings with no anonymous (copied-on-write) page in
/// `smaps`, the text of `/proc/self/smaps`.
fn clean_file_mappings(smaps: &str) -> Vec<Clean> {
    let mut out = Vec::new();
    let mut current: Option<Clean> = None;
    for line in smaps.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(first) = fields.next() else {
            continue;
        };
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            // `start-end perms offset dev inode [path]`: a new mapping.
            let perms = fields.next().unwrap_or("");
            let inode = fields.nth(2).unwrap_or("0");
            let candidate =
                perms.len() == 4 && !perms.contains('w') && perms.ends_with('p') && inode != "0";
            current = candidate.then_some(Clean { start, end });
        } else if first == "Anonymous:" {
            let kb = fields.next().unwrap_or("1");
            if let Some(m) = current.take()
                && kb == "0"
            {
                out.push(m);
            }
        }
    }
    out
}

/// Unmaps the pages of this process's clean, read-only file mappings (see the module doc);
/// returns how many mappings were given back. Best effort: a mapping the kernel refuses
/// (locked, say) is skipped.
pub fn release_clean_file_pages() -> std::io::Result<usize> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut released = 0;
    for m in clean_file_mappings(&smaps) {
        // SAFETY: the range is one whole mapping of this process, private, not writable,
        // file-backed and without anonymous pages, as the kernel listed it a moment ago (this
        // single-threaded process maps and unmaps nothing in between; a multi-threaded caller
        // could only race with its own munmap/mprotect, which rkt's callers do not do).
        // MADV_DONTNEED on such a range drops page-table entries of page-cache pages only;
        // every later access maps the same file contents again, so no memory that Rust code
        // may observe changes.
        let r = unsafe {
            libc::madvise(
                m.start as *mut libc::c_void,
                m.end - m.start,
                libc::MADV_DONTNEED,
            )
        };
        if r == 0 {
            released += 1;
        }
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
5600000000-5600001000 r--p 00000000 00:2f 77   /rkt-stage1
Size:                  4 kB
Anonymous:             0 kB
VmFlags: rd mr mw me dw sd
5600001000-5600200000 r-xp 00001000 00:2f 77   /rkt-stage1
Anonymous:             0 kB
5600200000-5600210000 r--p 00200000 00:2f 77   /rkt-stage1
Anonymous:            64 kB
5600210000-5600220000 rw-p 00210000 00:2f 77   /rkt-stage1
Anonymous:             0 kB
7f00000000-7f00001000 r--s 00000000 00:05 12   /memfd:shared
Anonymous:             0 kB
7ffd0000-7ffe0000 rw-p 00000000 00:00 0   [stack]
Anonymous:            16 kB
7fff0000-7fff2000 r-xp 00000000 00:00 0   [vdso]
Anonymous:             0 kB
";

    #[test]
    fn only_clean_private_read_only_file_mappings_are_picked() {
        assert_eq!(
            clean_file_mappings(SMAPS),
            [
                Clean {
                    start: 0x56_0000_0000,
                    end: 0x56_0000_1000
                },
                Clean {
                    start: 0x56_0000_1000,
                    end: 0x56_0020_0000
                },
            ]
        );
    }

    /// A table in the binary's read-only data, to read before and after.
    static TABLE: [u64; 1024] = {
        let mut t = [0u64; 1024];
        let mut i = 0;
        while i < t.len() {
            t[i] = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            i += 1;
        }
        t
    };

    fn checksum() -> u64 {
        std::hint::black_box(&TABLE)
            .iter()
            .fold(0u64, |a, x| a.rotate_left(5) ^ x)
    }

    #[test]
    fn releasing_keeps_the_program_and_its_constants_as_they_were() {
        let before = checksum();
        let smaps = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
        let released = release_clean_file_pages().unwrap();
        assert!(released > 0, "nothing to release in:\n{smaps}");
        // The code and the table are mapped back from the file, unchanged.
        assert_eq!(checksum(), before);
    }
}
