//! The cgroup v2 form of a device list: an eBPF program of type `BPF_PROG_TYPE_CGROUP_DEVICE`
//! that the kernel runs on every `mknod` and every open of a device node by a process of the
//! cgroup (or of a cgroup below it).
//!
//! The program sees `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`,
//! where the low 16 bits of `access_type` are the node's type (block 1, char 2) and the high
//! 16 bits the access asked for (mknod 1, read 2, write 4, possibly several). It returns 1 to
//! allow. Built here as data, one block of compares per [`DeviceRule`]: the first rule that
//! matches the type, covers every access asked for and matches the numbers allows; no match
//! denies. Written by hand (as runc and crun do) rather than pulling in a BPF toolchain.

use crate::devices::DeviceRule;

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

// Opcodes (linux/bpf.h: class | op | source).
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU32_AND_K: u8 = 0x54; // dst = (u32)dst & imm
const ALU32_RSH_K: u8 = 0x74; // dst = (u32)dst >> imm
const ALU64_MOV_K: u8 = 0xb7; // dst = imm
const ALU64_MOV_X: u8 = 0xbf; // dst = src
const JMP_JNE_K: u8 = 0x55; // if dst != imm goto pc + 1 + off
const JMP_EXIT: u8 = 0x95;

// Registers: r1 holds the context on entry; the fields are loaded into r2..r5 once.
const R0: u8 = 0;
const R1: u8 = 1;
const TYPE: u8 = 2;
const ACCESS: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;

/// One eBPF instruction, encoded as the kernel takes it (little-endian `struct bpf_insn`).
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | (u64::from(dst & 0xf) << 8)
        | (u64::from(src & 0xf) << 12)
        | (u64::from(off as u16) << 16)
        | (u64::from(imm as u32) << 32)
}

/// The access bits of a rule's `r`, `w`, `m` letters.
fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |acc, c| {
        acc | match c {
            'm' => ACC_MKNOD,
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            _ => 0,
        }
    })
}

/// The program allowing exactly `allow` (deny everything else), as instructions for
/// `rkt_sys::bpf::load_cgroup_device_program`.
pub fn program(allow: &[DeviceRule]) -> Vec<u64> {
    let mut p = vec![
        insn(LDX_MEM_W, TYPE, R1, 0, 0),
        insn(ALU32_AND_K, TYPE, 0, 0, 0xffff),
        insn(LDX_MEM_W, ACCESS, R1, 0, 0),
        insn(ALU32_RSH_K, ACCESS, 0, 0, 16),
        insn(LDX_MEM_W, MAJOR, R1, 4, 0),
        insn(LDX_MEM_W, MINOR, R1, 8, 0),
    ];
    for rule in allow {
        // Each `None` is a jump to the end of this rule's block, filled in below.
        let mut block: Vec<(u8, u8, u8, i32)> = Vec::new();
        let mut compare = |reg: u8, value: i32| block.push((JMP_JNE_K, reg, 0, value));
        match rule.kind {
            'c' => compare(TYPE, DEV_CHAR),
            'b' => compare(TYPE, DEV_BLOCK),
            _ => {}
        }
        let allowed = access_bits(rule.access);
        let all = ACC_MKNOD | ACC_READ | ACC_WRITE;
        if allowed & all != all {
            // Every access asked for must be allowed: (asked & !allowed) == 0.
            block.push((ALU64_MOV_X, R1, ACCESS, 0));
            block.push((ALU32_AND_K, R1, 0, !allowed & all));
            block.push((JMP_JNE_K, R1, 0, 0));
        }
        if let Some(major) = rule.major {
            block.push((JMP_JNE_K, MAJOR, 0, major as i32));
        }
        if let Some(minor) = rule.minor {
            block.push((JMP_JNE_K, MINOR, 0, minor as i32));
        }
        block.push((ALU64_MOV_K, R0, 0, 1));
        block.push((JMP_EXIT, 0, 0, 0));
        let len = block.len();
        for (i, (code, dst, src, imm)) in block.into_iter().enumerate() {
            // A failed compare skips the rest of the block: to the next rule.
            let off = if code == JMP_JNE_K {
                (len - 1 - i) as i16
            } else {
                0
            };
            p.push(insn(code, dst, src, off, imm));
        }
    }
    p.push(insn(ALU64_MOV_K, R0, 0, 0, 0));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::DEFAULT_DEVICES;

    /// Runs the program on one request, as the kernel would: a tiny interpreter of the
    /// instructions [`program`] emits.
    fn run(p: &[u64], kind: i32, access: i32, major: u32, minor: u32) -> u64 {
        let ctx = [((access as u32) << 16) | kind as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (code, dst, src) = (
                i as u8,
                ((i >> 8) & 0xf) as usize,
                ((i >> 12) & 0xf) as usize,
            );
            let (off, imm) = ((i >> 16) as u16 as i16, (i >> 32) as u32);
            pc += 1;
            match code {
                LDX_MEM_W => r[dst] = u64::from(ctx[off as usize / 4]),
                ALU32_AND_K => r[dst] = (r[dst] as u32 & imm) as u64,
                ALU32_RSH_K => r[dst] = (r[dst] as u32 >> imm) as u64,
                ALU64_MOV_K => r[dst] = u64::from(imm),
                ALU64_MOV_X => r[dst] = r[src],
                JMP_JNE_K if r[dst] != u64::from(imm) => pc += off as usize,
                JMP_JNE_K => {}
                JMP_EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn encodes_as_the_kernel_reads_it() {
        // r2 = *(u32 *)(r1 + 0): code 0x61, dst 2, src 1.
        assert_eq!(insn(LDX_MEM_W, 2, 1, 0, 0), 0x1261);
        assert_eq!(
            insn(JMP_JNE_K, 4, 0, 3, 136),
            (136 << 32) | (3 << 16) | 0x0455
        );
    }

    #[test]
    fn the_default_list_allows_what_it_says_and_nothing_else() {
        let p = program(DEFAULT_DEVICES);
        let rw = ACC_READ | ACC_WRITE;
        assert_eq!(run(&p, DEV_CHAR, rw, 1, 3), 1, "/dev/null");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 136, 7), 1, "a pty");
        assert_eq!(
            run(&p, DEV_CHAR, ACC_MKNOD, 1, 1),
            1,
            "mknod of any char node"
        );
        assert_eq!(
            run(&p, DEV_BLOCK, ACC_MKNOD, 8, 0),
            1,
            "mknod of any block node"
        );
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 1), 0, "/dev/mem");
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 0, "a disk");
        assert_eq!(
            run(&p, DEV_BLOCK, ACC_READ, 1, 3),
            0,
            "a block node with null's numbers"
        );
        assert_eq!(
            run(&p, DEV_CHAR, ACC_MKNOD | ACC_READ, 1, 1),
            0,
            "more than allowed"
        );
    }

    #[test]
    fn read_only_and_wildcard_rules() {
        let rules = [
            DeviceRule {
                kind: 'b',
                major: Some(7),
                minor: Some(0),
                access: "rm",
            },
            DeviceRule {
                kind: 'a',
                major: Some(10),
                minor: None,
                access: "rwm",
            },
        ];
        let p = program(&rules);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 7, 0), 1);
        assert_eq!(run(&p, DEV_BLOCK, ACC_WRITE, 7, 0), 0, "read-only");
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 7, 1), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 10, 200), 1);
        assert_eq!(run(&p, DEV_BLOCK, ACC_WRITE, 10, 1), 1);
        assert_eq!(program(&[]).len(), 8, "loads and a deny");
    }
}
