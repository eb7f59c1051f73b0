use std::process::ExitCode;

use clap::Parser;
use streamhub_bench::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("streamhub-bench: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = args.json;
    match rt.block_on(streamhub_bench::run(args)) {
        Ok(report) => {
            if json {
                match serde_json::to_string(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("streamhub-bench: encoding the report: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{report}");
            }
            // Thousands of sockets close with the runtime; do not wait for their tasks.
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("streamhub-bench: {e:#}");
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
            ExitCode::FAILURE
        }
    }
}
