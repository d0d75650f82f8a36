// SPDX-License-Identifier: MIT OR Apache-2.0
//! `odm-train bench`: training speed on fixed random batches.

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "wrn-10-1")]
    arch: String,
    #[arg(long, default_value_t = 32)]
    input: i64,
    #[arg(long, default_value_t = 32)]
    embedding: i64,
    #[arg(long, default_value_t = 64)]
    batch: i64,
    #[arg(long, default_value_t = 30)]
    steps: usize,
    #[arg(long, default_value_t = 2)]
    threads: i32,
}

impl Args {
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let Args { arch, input, embedding, batch, steps, threads } = self;
        tch::set_num_threads(threads);
        let arch = arch.parse().map_err(odm_trainer::TrainError::Config)?;
        let (ips, sps, mib) = odm_trainer::bench::bench(arch, input, embedding, batch, steps, 3)?;
        out!("| runtime | network | input | embedding | batch | threads | steps | img/s | s/step | peak RSS MiB |");
        out!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        out!(
            "| odm-tch | {arch} | {input}x{input} | {embedding} | {batch} | {threads} | {steps} | {ips:.1} | {sps:.4} \
             | {mib:.0} |"
        );
        Ok(())
    }
}
