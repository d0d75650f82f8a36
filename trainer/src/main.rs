// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train`: the command line over the odm-trainer library. The grammar and each command are in `cli/`; this
//! file parses, dispatches and prints the error.

use std::process::ExitCode;

use clap::Parser;

mod cli;

/// libtorch frees every activation and gradient at the end of a training step and allocates them again in the next.
/// With glibc's defaults the freed memory goes back to the kernel (the free top of the heap is trimmed, blocks above
/// the mmap threshold are unmapped), so every step faults the same pages in again and the kernel zeroes them: 12-29%
/// of a step on the 2-core machine (`odm-train bench`; docs/benchmarks.md "Training speed"). Keep freed memory in the
/// process instead: blocks below 32 MiB (glibc's largest threshold) come from the heap, and the heap is never
/// trimmed. The cost: resident memory stays at the process's high-water mark (the data, the largest step) until it
/// exits; odm-train is a batch command, so that is the memory it needed anyway.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes glibc's allocation parameters (it takes the arena locks itself).
        let ok = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
        };
        if !ok {
            eprintln!("odm-train: glibc refused the allocation settings (mallopt); training runs slower");
        }
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
