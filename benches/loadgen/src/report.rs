//! What every workload reports: latency percentiles and the one JSON result line.

use std::time::Duration;

use serde_json::Value;

/// Latency samples of one run.
#[derive(Debug, Default)]
pub(crate) struct Latencies {
    samples: Vec<Duration>,
}

impl Latencies {
    /// Records one sample.
    pub(crate) fn record(&mut self, d: Duration) {
        self.samples.push(d);
    }

    /// Takes every sample of `other`.
    pub(crate) fn merge(&mut self, other: Latencies) {
        self.samples.extend(other.samples);
    }

    /// How many samples there are.
    pub(crate) fn len(&self) -> usize {
        self.samples.len()
    }

    /// The `q`-quantile (0.0..=1.0) in microseconds, nearest-rank; 0 without samples.
    pub(crate) fn quantile_us(&mut self, q: f64) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        self.samples.sort_unstable();
        let rank = ((q.clamp(0.0, 1.0) * self.samples.len() as f64).ceil() as usize).clamp(1, self.samples.len());
        self.samples[rank - 1].as_secs_f64() * 1e6
    }
}

/// Prints the result line (the last line of stdout, one JSON object).
pub(crate) fn emit(result: &Value) {
    println!("{result}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let mut l = Latencies::default();
        assert_eq!(l.quantile_us(0.5), 0.0);
        for us in 1..=100u64 {
            l.record(Duration::from_micros(us));
        }
        assert_eq!(l.len(), 100);
        assert_eq!(l.quantile_us(0.5), 50.0);
        assert_eq!(l.quantile_us(0.99), 99.0);
        assert_eq!(l.quantile_us(1.0), 100.0);
        assert_eq!(l.quantile_us(0.0), 1.0);
    }
}
