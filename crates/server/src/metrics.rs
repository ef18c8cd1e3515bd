//! Instantaneous metrics of `INFO stats` (`instantaneous_ops_per_sec`,
//! `instantaneous_input_kbps`, `instantaneous_output_kbps`), computed as
//! Redis does: the `kvd-metrics` thread samples the cumulative counters every
//! 100 ms and INFO reports the mean rate over the last 16 samples.

use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::server::Shared;

/// Samples kept (Redis's `STATS_METRIC_SAMPLES`).
const SAMPLES: usize = 16;
/// Sampling period (Redis samples from `serverCron`, 10 times a second).
const PERIOD: Duration = Duration::from_millis(100);

/// The three tracked metrics.
#[derive(Debug, Clone, Copy)]
enum Metric {
    Ops = 0,
    InputBytes = 1,
    OutputBytes = 2,
}

#[derive(Debug, Default)]
struct Ring {
    /// Rates (per second) of each metric, `SAMPLES` each.
    rates: [[f64; SAMPLES]; 3],
    next: usize,
    filled: usize,
    last: Option<(Instant, [u64; 3])>,
}

/// Sliding-window rates over the server's cumulative counters.
#[derive(Debug, Default)]
pub struct Instantaneous {
    ring: Mutex<Ring>,
}

impl Instantaneous {
    /// Records the cumulative counters `values` (ops, input bytes, output
    /// bytes) as seen at `now`.
    pub fn sample(&self, now: Instant, values: [u64; 3]) {
        let mut r = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, prev)) = r.last {
            let secs = now.duration_since(t).as_secs_f64();
            if secs > 0.0 {
                let i = r.next;
                for m in 0..3 {
                    // Counters can go down on CONFIG RESETSTAT: count that as 0.
                    r.rates[m][i] = values[m].saturating_sub(prev[m]) as f64 / secs;
                }
                r.next = (i + 1) % SAMPLES;
                r.filled = (r.filled + 1).min(SAMPLES);
            }
        }
        r.last = Some((now, values));
    }

    fn mean(&self, m: Metric) -> f64 {
        let r = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if r.filled == 0 {
            return 0.0;
        }
        // Unfilled slots are zero, like Redis's freshly started samples array.
        r.rates[m as usize].iter().sum::<f64>() / SAMPLES as f64
    }

    /// `instantaneous_ops_per_sec`.
    pub fn ops_per_sec(&self) -> u64 {
        self.mean(Metric::Ops).round() as u64
    }

    /// `instantaneous_input_kbps`.
    pub fn input_kbps(&self) -> f64 {
        self.mean(Metric::InputBytes) / 1024.0
    }

    /// `instantaneous_output_kbps`.
    pub fn output_kbps(&self) -> f64 {
        self.mean(Metric::OutputBytes) / 1024.0
    }
}

/// Starts the `kvd-metrics` sampling thread (ends at shutdown).
pub fn start(shared: &Shared) {
    let sh = shared.clone();
    let r = std::thread::Builder::new()
        .name("kvd-metrics".into())
        .spawn(move || {
            while !sh.shutting_down.load(Ordering::Acquire) {
                let st = &sh.stats;
                st.instantaneous.sample(
                    Instant::now(),
                    [
                        st.sum(|s| &s.total_commands_processed),
                        st.sum(|s| &s.net_input_bytes),
                        st.sum(|s| &s.net_output_bytes),
                    ],
                );
                std::thread::sleep(PERIOD);
            }
        });
    if let Err(e) = r {
        tracing::warn!("cannot start the metrics thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_means_over_the_window() {
        let m = Instantaneous::default();
        assert_eq!(m.ops_per_sec(), 0);
        let t0 = Instant::now();
        m.sample(t0, [0, 0, 0]);
        // 16 samples of 100 ms with 1000 ops and 10 KiB in / 20 KiB out each.
        for i in 1..=SAMPLES as u64 {
            m.sample(t0 + PERIOD * i as u32, [1000 * i, 10240 * i, 20480 * i]);
        }
        assert_eq!(m.ops_per_sec(), 10_000);
        assert!((m.input_kbps() - 100.0).abs() < 1e-6);
        assert!((m.output_kbps() - 200.0).abs() < 1e-6);
        // Idle afterwards: the window slides to zero.
        let end = t0 + PERIOD * (2 * SAMPLES as u32);
        for i in 0..SAMPLES as u32 {
            m.sample(end + PERIOD * i, [16_000, 163_840, 327_680]);
        }
        assert_eq!(m.ops_per_sec(), 0);
    }

    #[test]
    fn a_reset_counter_counts_as_zero() {
        let m = Instantaneous::default();
        let t0 = Instant::now();
        m.sample(t0, [500, 0, 0]);
        m.sample(t0 + PERIOD, [0, 0, 0]);
        assert_eq!(m.ops_per_sec(), 0);
    }
}
