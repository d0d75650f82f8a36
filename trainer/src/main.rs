// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train`: the command line over the odm-trainer library. The grammar and each command are in `cli/`; this
//! file parses, dispatches and prints the error.

use std::process::ExitCode;

use clap::Parser;

mod cli;

/// libtorch frees every activation and gradient at the end of a training step and allocates them again in the next.
/// glibc returns such blocks to the kernel (blocks from 128 KiB up are mapped and unmapped one by one, and the heap's
/// free top is trimmed), so every step faults the same pages in again and zeroes them: 12-29% of a step on the 2-core
/// machine (`odm-train bench`, docs/benchmarks.md). Keep freed memory in the process instead: blocks below 32 MiB
/// come from the heap, and the heap is never trimmed. PyTorch's Python processes keep their memory the same way in
/// practice; the peak resident memory stays what the largest step needs.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation parameters; called first thing, before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    match cli::Cli::parse().command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "odm-train: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_grammar_is_consistent() {
        // clap's own checks: every id named in conflicts_with / required_unless_present exists, no flag twice.
        super::cli::Cli::command().debug_assert();
    }
}
