//! What a sink promises about its output across failures.

/// What a sink promises about its output across failures (Flink's `DeliveryGuarantee`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeliveryGuarantee {
    /// Records may be lost or repeated after a failure: they are written when the sink's
    /// buffers are full or old, not in step with checkpoints.
    None,
    /// No record is lost: every checkpoint waits until what came before its barrier is
    /// written; a restart may write records again (an upsert makes that invisible).
    #[default]
    AtLeastOnce,
    /// Each record is written once, visible when the checkpoint after it completes
    /// (a two-phase commit with the checkpoint).
    ExactlyOnce,
}
