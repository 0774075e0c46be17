//! Combines the watermarks and watermark statuses of a task's input channels into one
//! (Flink's `StatusWatermarkValve`): the output watermark is the minimum over the active,
//! aligned channels; idle channels do not hold it back; it never goes backwards.

use crate::element::{Watermark, WatermarkStatus};

#[derive(Clone, Copy, Debug)]
struct ChannelState {
    watermark: i64,
    idle: bool,
    aligned: bool,
}

/// What the valve tells the task to forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValveOutput {
    /// Forward this watermark.
    Watermark(Watermark),
    /// Forward this status change.
    Status(WatermarkStatus),
}

/// Per-channel watermark bookkeeping of one task.
#[derive(Debug)]
pub struct WatermarkValve {
    channels: Vec<ChannelState>,
    last_output: i64,
    idle: bool,
}

impl WatermarkValve {
    /// A valve over `n` channels, all active with no watermark yet.
    pub fn new(n: usize) -> Self {
        WatermarkValve {
            channels: vec![
                ChannelState {
                    watermark: i64::MIN,
                    idle: false,
                    aligned: true,
                };
                n
            ],
            last_output: i64::MIN,
            idle: false,
        }
    }

    /// The last watermark forwarded.
    pub fn current(&self) -> i64 {
        self.last_output
    }

    /// A watermark arrived on `channel`; returns what to forward, if anything.
    pub fn input_watermark(&mut self, channel: usize, wm: Watermark) -> Option<ValveOutput> {
        let ch = &mut self.channels[channel];
        if ch.idle || wm.0 <= ch.watermark {
            return None;
        }
        ch.watermark = wm.0;
        if !ch.aligned && ch.watermark >= self.last_output {
            ch.aligned = true;
        }
        self.new_min()
    }

    /// A status change arrived on `channel`.
    pub fn input_status(&mut self, channel: usize, status: WatermarkStatus) -> Vec<ValveOutput> {
        let mut out = Vec::new();
        let ch = &mut self.channels[channel];
        match status {
            WatermarkStatus::Idle if !ch.idle => {
                ch.idle = true;
                ch.aligned = false;
                if self.channels.iter().all(|c| c.idle) {
                    // Everything is idle: release the largest watermark seen, then go idle.
                    let max = self.channels.iter().map(|c| c.watermark).max();
                    if let Some(max) = max.filter(|&m| m > self.last_output) {
                        self.last_output = max;
                        out.push(ValveOutput::Watermark(Watermark(max)));
                    }
                    self.idle = true;
                    out.push(ValveOutput::Status(WatermarkStatus::Idle));
                } else if let Some(o) = self.new_min() {
                    out.push(o);
                }
            }
            WatermarkStatus::Active if ch.idle => {
                ch.idle = false;
                ch.aligned = ch.watermark >= self.last_output;
                if self.idle {
                    self.idle = false;
                    out.push(ValveOutput::Status(WatermarkStatus::Active));
                }
            }
            _ => {}
        }
        out
    }

    /// `channel` ended: it no longer holds the watermark back.
    pub fn channel_ended(&mut self, channel: usize) -> Option<ValveOutput> {
        let ch = &mut self.channels[channel];
        ch.watermark = i64::MAX;
        ch.idle = false;
        ch.aligned = true;
        self.new_min()
    }

    /// `channel` stopped after a savepoint: it no longer holds the watermark back, but does
    /// not advance it either (when every channel stopped, event time stands still).
    pub fn channel_stopped(&mut self, channel: usize) {
        let ch = &mut self.channels[channel];
        ch.idle = true;
        ch.aligned = false;
    }

    fn new_min(&mut self) -> Option<ValveOutput> {
        let min = self
            .channels
            .iter()
            .filter(|c| c.aligned && !c.idle)
            .map(|c| c.watermark)
            .min()?;
        if min > self.last_output {
            self.last_output = min;
            Some(ValveOutput::Watermark(Watermark(min)))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wm(v: &mut WatermarkValve, c: usize, w: i64) -> Option<i64> {
        match v.input_watermark(c, Watermark(w)) {
            Some(ValveOutput::Watermark(Watermark(x))) => Some(x),
            _ => None,
        }
    }

    #[test]
    fn minimum_over_channels() {
        let mut v = WatermarkValve::new(2);
        assert_eq!(wm(&mut v, 0, 10), None);
        assert_eq!(wm(&mut v, 1, 5), Some(5));
        assert_eq!(wm(&mut v, 1, 20), Some(10));
        assert_eq!(wm(&mut v, 0, 8), None, "never backwards");
    }

    #[test]
    fn idle_channel_does_not_hold_back() {
        let mut v = WatermarkValve::new(2);
        wm(&mut v, 0, 100);
        let out = v.input_status(1, WatermarkStatus::Idle);
        assert_eq!(out, vec![ValveOutput::Watermark(Watermark(100))]);
        let out = v.input_status(0, WatermarkStatus::Idle);
        assert_eq!(out, vec![ValveOutput::Status(WatermarkStatus::Idle)]);
        let out = v.input_status(1, WatermarkStatus::Active);
        assert_eq!(out, vec![ValveOutput::Status(WatermarkStatus::Active)]);
        // Channel 1 is behind the output watermark: not aligned until it catches up.
        assert_eq!(wm(&mut v, 1, 50), None);
        assert_eq!(wm(&mut v, 1, 150), Some(150));
    }
}
