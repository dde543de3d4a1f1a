//! Percentiles for the benchmark binaries (the same helper the mounter's status uses).

pub use xoq_link::stats::percentile;
