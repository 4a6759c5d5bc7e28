//! `conclavectl coinjoin ...`: the subcommands, the control call each one
//! makes, and how its answer is printed.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// What `conclavectl coinjoin` does.
#[derive(clap::Subcommand, Debug)]
pub enum CoinjoinAction {
    /// Mix coins: announce a request that takes part in every epoch's
    /// round until it completes or is cancelled; prints its id.
    Join {
        /// Sats per mixed output.
        #[arg(long, value_name = "SATS")]
        denomination: u64,
        /// The coins to mix (paid to `conclavectl wallet address`).
        #[arg(
            long,
            value_delimiter = ',',
            required = true,
            value_name = "TXID:VOUT,..."
        )]
        inputs: Vec<String>,
        /// Fee rate, sat/vB (rounded up to 1, 2, 5, 10, 20, 50 or 100).
        #[arg(long, value_name = "SAT_PER_VB", default_value_t = 1)]
        fee_rate: u64,
        /// The most fee to pay, sats.
        #[arg(long, value_name = "SATS")]
        max_fee: Option<u64>,
    },
    /// A request's phase, peers, exclusions and, once done, its transaction.
    Status {
        /// The id `coinjoin join` printed.
        request_id: String,
        /// Wait up to SECS for the request to finish.
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        wait: u64,
        /// Write the signed transaction (hex) to FILE.
        #[arg(long, value_name = "FILE")]
        tx_out: Option<PathBuf>,
    },
    /// Every request of this daemon.
    List,
    /// Stop a request from joining further rounds.
    Cancel {
        /// The id `coinjoin join` printed.
        request_id: String,
    },
}

impl CoinjoinAction {
    /// The control method and its parameters.
    pub fn request(&self) -> (&'static str, Value) {
        match self {
            Self::Join {
                denomination,
                inputs,
                fee_rate,
                max_fee,
            } => (
                "coinjoin.join",
                json!({
                    "denomination": denomination,
                    "inputs": inputs,
                    "fee_rate": fee_rate,
                    "max_fee": max_fee,
                }),
            ),
            Self::Status {
                request_id, wait, ..
            } => (
                "coinjoin.status",
                json!({ "request_id": request_id, "wait_secs": wait }),
            ),
            Self::List => ("coinjoin.list", json!({})),
            Self::Cancel { request_id } => ("coinjoin.cancel", json!({ "request_id": request_id })),
        }
    }

    /// Writes what `--tx-out` asked for.
    pub fn write_exports(&self, result: &Value) -> Result<()> {
        let Self::Status {
            tx_out: Some(path), ..
        } = self
        else {
            return Ok(());
        };
        let Some(hex) = result["tx_hex"].as_str() else {
            bail!(
                "the request is {}, with no transaction yet: wait with --wait SECS",
                result["phase"].as_str().unwrap_or("unknown")
            );
        };
        std::fs::write(path, format!("{hex}\n"))
            .with_context(|| format!("writing the transaction to {}", path.display()))
    }

    /// Prints `result` for people.
    pub fn print_text(&self, result: &Value) {
        match self {
            Self::Join { .. } => println!(
                "request {} announced; it joins each epoch's round (follow it with: conclavectl coinjoin status {} --wait 600)",
                s(&result["request_id"]),
                s(&result["request_id"])
            ),
            Self::Status { .. } | Self::Cancel { .. } => print_status(result),
            Self::List => {
                let list = result.as_array().cloned().unwrap_or_default();
                if list.is_empty() {
                    println!("no CoinJoin requests (start one with: conclavectl coinjoin join)");
                }
                for r in list {
                    println!(
                        "{}  {} sats at {} sat/vB  {}  {}",
                        s(&r["request_id"]),
                        r["denomination"],
                        r["fee_rate"],
                        s(&r["phase"]),
                        r["txid"].as_str().unwrap_or("-")
                    );
                }
            }
        }
    }
}

fn s(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn print_status(r: &Value) {
    println!(
        "request {}: {} (run {}, {} peers)",
        s(&r["request_id"]),
        s(&r["phase"]),
        r["run"],
        r["peers"]
    );
    for e in r["excluded"].as_array().into_iter().flatten() {
        println!(
            "excluded {}: {} (until {} ms)",
            s(&e["outpoint"]),
            s(&e["reason"]),
            e["until_ms"]
        );
    }
    if let Some(txid) = r["txid"].as_str() {
        println!("txid {txid}, our fee {} sats", r["fee_sats"]);
    }
    for o in r["our_outputs"].as_array().into_iter().flatten() {
        let kind = if o["mixed"].as_bool() == Some(true) {
            "mixed"
        } else {
            "change (unmixed)"
        };
        println!(
            "  {} sats to {} ({kind})",
            o["amount_sats"],
            s(&o["address"])
        );
    }
    if let Some(e) = r["last_error"].as_str() {
        println!("last error: {e}");
    }
}
